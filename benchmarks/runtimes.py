"""Today's runtimes side by side, from one run on this host (same model, thread count and
protocol for every cell):

1. LiteRT.js (litertjs-wasm) against its predecessor tfjs-tflite (tflite-web) in headless
   Chromium, on the four converter .tflite variants;
2. LiteRT's CompiledModel API (litert-compiled, CPU accelerator) against its Interpreter
   (litert, XNNPack) natively;
3. the browser question: ONNX Runtime Web (ort-wasm, ONNX variants) against TF.js WASM
   (tfjs-wasm, TF.js variants) against LiteRT.js (.tflite variants), by precision, with the native
   runtimes (onnxruntime, litert) beside them.

Usage: python benchmarks/runtimes.py [--model mobilenet_v2] [--tiny] [--threads 2]
       python benchmarks/runtimes.py --all-models   # LiteRT.js on every garden model's variants

Builds what it needs (cached in build/), measures through the ordinary run (reports/<run-id>/,
the matrix's default protocol) and prints, per cell, p50 with its 95 % interval, the number of
timed runs and the in-page/worker fidelity status; per pair, the p50 ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TFLITE = ("tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full")
PAIRS = (("litertjs-wasm", "tflite-web"), ("litert-compiled", "litert"))
#: Precision -> (ONNX variant, TF.js variant, .tflite variant): the closest builds of each format.
PEERS = {"float32": ("onnx-fp32", "tfjs-fp32", "tflite-fp32"),
         "float16": ("onnx-fp16", "tfjs-fp16", "tflite-fp16"),
         "int8": ("onnx-int8", "tfjs-uint8", "tflite-int8-full")}
PEER_RUNTIMES = (("ort-wasm", 0), ("tfjs-wasm", 1), ("litertjs-wasm", 2),
                 ("onnxruntime", 0), ("litert", 2))

MATRIX = """\
[build]
models = {models}
variants = {variants}
jobs = 2
build_dir = "{root}/build"

[bench]
devices = ["host"]
protocol = {{ max_warmup_seconds = 5.0, max_seconds = 8.0 }}
threads = [{threads}]
fidelity_images = 4
reports_dir = "{root}/reports"
{rules}"""

RULE = """
[[bench.cells]]
runtimes = {runtimes}
variants = {variants}
devices = ["host"]
threads = [{threads}]
"""


def _cell(rec: dict | None) -> str:
    if rec is None:
        return "-"
    if rec["status"] != "ok":
        return f"{rec['status']}: {(rec.get('error') or '')[:60]}"
    lat = rec["metrics"]["latency"]
    lo, hi = lat["ci95"]
    fid = (rec["metrics"].get("fidelity") or {}).get("status", "-")
    return f"{lat['p50']:7.2f} [{lo:.2f}, {hi:.2f}] n={lat['n']:<3} {fid}"


def _p50(rec: dict | None) -> float | None:
    return rec["metrics"]["latency"]["p50"] if rec and rec["status"] == "ok" else None


def _rules(all_models: bool, threads: int) -> tuple[list[str], str]:
    """The variants to build and the matrix's rules."""
    def rule(runtimes, variants):
        return RULE.format(runtimes=json.dumps(runtimes), variants=json.dumps(variants),
                           threads=threads)

    if all_models:
        return list(TFLITE), rule(["litertjs-wasm"], list(TFLITE))
    variants = list(dict.fromkeys([*TFLITE, *(v for peer in PEERS.values() for v in peer)]))
    rules = [rule([r for pair in PAIRS for r in pair], list(TFLITE)),
             rule(["ort-wasm", "onnxruntime"], [p[0] for p in PEERS.values()]),
             rule(["tfjs-wasm"], [p[1] for p in PEERS.values()])]
    return variants, "".join(rules)


def _print_pairs(by: dict, model: str) -> None:
    for a, b in PAIRS:
        print(f"\n{'variant':22} {a:40} {b:40} p50 {a}/{b}")
        for v in TFLITE:
            ra, rb = by.get((model, v, a)), by.get((model, v, b))
            pa, pb = _p50(ra), _p50(rb)
            ratio = f"{pa / pb:.2f}" if pa and pb else "-"
            print(f"{v:22} {_cell(ra):40} {_cell(rb):40} {ratio}")


def _print_peers(by: dict, model: str) -> None:
    print("\nthe browser question (and native beside it): p50 ms [95 % CI] n fidelity; "
          "ratio to LiteRT.js")
    for precision, variants in PEERS.items():
        base = _p50(by.get((model, variants[2], "litertjs-wasm")))
        print(f"\n{precision}")
        for runtime, i in PEER_RUNTIMES:
            rec = by.get((model, variants[i], runtime))
            p = _p50(rec)
            ratio = f"x{p / base:.2f}" if p and base else "-"
            print(f"  {runtime:14} {variants[i]:18} {_cell(rec):40} {ratio}")


def _print_models(by: dict, models: list[str]) -> None:
    print(f"\n{'model':30} " + " ".join(f"{v:24}" for v in TFLITE))
    for model in models:
        cells = []
        for v in TFLITE:
            rec = by.get((model, v, "litertjs-wasm"))
            if rec is None:
                cells.append("-")
            elif rec["status"] == "ok":
                cells.append(f"ok {_p50(rec):.1f} ms")
            else:
                cells.append(rec["status"])
        print(f"{model:30} " + " ".join(f"{c:24}" for c in cells))
    for rec in by.values():
        if rec["status"] != "ok":
            print(f"  {rec['cell_id']}: {rec['status']}: {rec.get('error')}")


def main() -> None:
    from edge import workflow
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.scheduling.matrix import load_matrix
    from edge.garden import DEFAULT_GARDEN

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--all-models", action="store_true",
                        help="LiteRT.js on every garden model's four .tflite variants")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    models = list(DEFAULT_GARDEN) if args.all_models else [args.model]
    variants, rules = _rules(args.all_models, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.toml"
        path.write_text(MATRIX.format(models=json.dumps(models), variants=json.dumps(variants),
                                      root=Path.cwd(), threads=args.threads, rules=rules))
        matrix = load_matrix(path, device_names=list(load_catalog()))
        settings = workflow.run_settings(matrix, tiny=args.tiny)
        workflow.build_step(settings.targets(), matrix.build_dir, jobs=matrix.jobs)
        run_dir = workflow.measure(matrix, settings=settings)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()
               if line.strip()]
    by = {(r["model"], r["variant"], r["runtime"]): r for r in records}
    slugs = list(dict.fromkeys(r["model"] for r in records))
    print(f"\n{', '.join(slugs)}{' (tiny)' if args.tiny else ''}, host, {args.threads} threads; "
          f"p50 ms [95 % CI] n fidelity; run {run_dir.name}")
    if args.all_models:
        _print_models(by, slugs)
        return
    _print_pairs(by, slugs[0])
    _print_peers(by, slugs[0])


if __name__ == "__main__":
    main()
