"""Harness overhead: the measuring machinery against a bare timing loop on the same model.

- TFLite: `run_tflite_cell` (worker subprocess, protocol) against a bare interpreter loop in
  this process (target: within 3 %).
- Browser: the harness's warm p50 against a bare `predict` + `data()` loop in the same page
  (target: within 5 %).

Usage: python benchmarks/overhead.py [--model mobilenet_v2] [--tiny] [--runs 200]
Builds the two variants it needs (cached) into build/.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BARE_LOOP_JS = """async ([url, shape, runs, warmup]) => {
  const model = await tf.loadGraphModel(url);
  const x = tf.zeros(shape);
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = performance.now();
    const y = model.predict(x);
    await y.data();
    const t1 = performance.now();
    y.dispose();
    if (i >= warmup) times.push(t1 - t0);
  }
  x.dispose();
  model.dispose();
  return times;
}"""


def _ratio_line(name: str, harness: float, bare: float, target: float) -> str:
    diff = (harness / bare - 1) * 100
    verdict = "ok" if abs(diff) <= target else "over target"
    return (f"{name:8} harness p50 {harness:8.3f} ms   bare p50 {bare:8.3f} ms   "
            f"difference {diff:+6.2f} % (target within {target:.0f} %: {verdict})")


def main() -> None:
    from edge import workflow
    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.protocol.protocol import summarize
    from edge.farm.runners.tflite_runner import bare_loop_p50, run_tflite_cell

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    args = parser.parse_args()

    targets = workflow.garden_targets([args.model], tiny=args.tiny,
                                      variants=("tflite-fp32", "tfjs-fp32"))
    workflow.build(targets, args.build_dir, jobs=1)
    artifacts = artifacts_for(targets, Store(args.build_dir))
    slug = targets[0].slug
    tflite = artifacts[(slug, "tflite-fp32")]
    tfjs = artifacts[(slug, "tfjs-fp32")]

    protocol = {"warmup": 10, "min_runs": args.runs, "min_seconds": 0.0,
                "max_runs": args.runs}
    run = run_tflite_cell(tflite.main_file, threads=args.threads, protocol=protocol)
    harness = summarize(run.metrics["samples_ms"])["p50"]
    bare = bare_loop_p50(tflite.main_file, args.threads, args.runs)
    print(_ratio_line("tflite", harness, bare, 3))

    from edge.farm.runners.browser import BrowserSession, open_page, resolve_browser, run_harness
    from edge.farm.runners.server import LoopbackServer
    from edge.farm.runners.web_runtime import ensure_web_runtime, harness_dir, node_modules

    ensure_web_runtime()
    roots = {"harness": harness_dir(), "node_modules": node_modules(),
             "artifacts": args.build_dir}
    url = f"/artifacts/artifacts/{tfjs.dir.name}/model.json"
    shape = tfjs.manifest["model"]["input_shape"]
    with LoopbackServer(roots) as server, BrowserSession(resolve_browser()) as session:
        context, page, _ = open_page(session, server.url)
        try:
            result = run_harness(page, {
                "runtime": "tfjs-wasm", "modelUrl": url,
                "input": {"shape": shape, "dtype": "float32",
                          "mean": tfjs.manifest["model"]["mean"],
                          "std": tfjs.manifest["model"]["std"]},
                "protocol": {"warmup": 10, "minRuns": args.runs, "minSeconds": 0,
                             "maxRuns": args.runs}}, timeout_s=600)
            if result.get("error"):
                raise SystemExit(f"harness failed: {result['error']}")
            harness = statistics.median(result["samplesMs"])
            bare = statistics.median(page.evaluate(BARE_LOOP_JS, [url, shape, args.runs, 10]))
        finally:
            context.close()
    print(_ratio_line("tfjs-wasm", harness, bare, 5))


if __name__ == "__main__":
    main()
