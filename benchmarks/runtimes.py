"""Today's .tflite runtimes side by side, from one run on this host (same model, variants and
thread count): LiteRT.js (litertjs-wasm) against tfjs-tflite (tflite-web) in headless Chromium,
and LiteRT's CompiledModel API (litert-compiled) against its Interpreter (litert) natively.

Usage: python benchmarks/runtimes.py [--model mobilenet_v2] [--tiny] [--threads 2]
Builds the four TFLite variants (cached in build/), measures them through the ordinary run
(reports/<run-id>/, the matrix's default protocol) and prints p50 with its 95 % interval, the
number of timed runs, the fidelity status, and each pair's p50 ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VARIANTS = ("tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full")
PAIRS = (("litertjs-wasm", "tflite-web"), ("litert-compiled", "litert"))

MATRIX = """\
[build]
models = ["{model}"]
variants = {variants}
jobs = 2
build_dir = "{root}/build"

[bench]
devices = ["host"]
protocol = {{ max_warmup_seconds = 5.0, max_seconds = 8.0 }}
threads = [{threads}]
fidelity_images = 4
reports_dir = "{root}/reports"

[[bench.cells]]
runtimes = {runtimes}
variants = ["tflite-*"]
devices = ["host"]
threads = [{threads}]
"""


def _cell(rec: dict) -> str:
    if rec["status"] != "ok":
        return f"{rec['status']}: {(rec.get('error') or '')[:60]}"
    lat = rec["metrics"]["latency"]
    lo, hi = lat["ci95"]
    fid = (rec["metrics"].get("fidelity") or {}).get("status", "-")
    return f"{lat['p50']:7.2f} [{lo:.2f}, {hi:.2f}] n={lat['n']:<3} {fid}"


def main() -> None:
    from edge import workflow
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.scheduling.matrix import load_matrix

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runtimes = [r for pair in PAIRS for r in pair]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.toml"
        path.write_text(MATRIX.format(model=args.model, variants=json.dumps(list(VARIANTS)),
                                      root=Path.cwd(), threads=args.threads,
                                      runtimes=json.dumps(runtimes)))
        matrix = load_matrix(path, device_names=list(load_catalog()))
        settings = workflow.run_settings(matrix, tiny=args.tiny)
        workflow.build_step(settings.targets(), matrix.build_dir, jobs=matrix.jobs)
        run_dir = workflow.measure(matrix, settings=settings)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()
               if line.strip()]
    by = {(r["variant"], r["runtime"]): r for r in records}
    print(f"\n{args.model}{' (tiny)' if args.tiny else ''}, host, {args.threads} threads; "
          f"p50 ms [95 % CI] n fidelity; run {run_dir.name}")
    for a, b in PAIRS:
        print(f"\n{'variant':22} {a:40} {b:40} p50 {a}/{b}")
        for v in VARIANTS:
            ra, rb = by.get((v, a)), by.get((v, b))
            ratio = "-"
            if ra and rb and ra["status"] == rb["status"] == "ok":
                ratio = (f"{ra['metrics']['latency']['p50'] / rb['metrics']['latency']['p50']:.2f}")
            print(f"{v:22} {_cell(ra) if ra else '-':40} {_cell(rb) if rb else '-':40} {ratio}")


if __name__ == "__main__":
    main()
