"""Benchmark: how good are the phone estimates (edge/estimate.py)?

Leave one out over every published phone figure the run can pair with a host measurement: the
figure is hidden, the estimator is built from the rest (the other figures of that phone, the
other phones' precision effects and index scaling), and its estimate host x factor is compared
with the published figure. Beside it, the bare benchmark-index ratio (host index / phone index,
what per-cell emulation steers to). Per phone and runtime kind: n, the median and worst
|error|, the share within +-25 %, and how often the published figure falls inside the stated
80 % interval (coverage; an 80 % interval should hold about 80 %).

`--stand-in`: a device whose speed is known and not one factor (this host under a CPU quota,
measured on one thread where the host runs two) is calibrated with `edge calibrate`'s reference
set (MobileNetV2 and EfficientNet-Lite0, float32 and full int8), then models outside it are
predicted and measured directly on the stand-in.

    python benchmarks/estimator.py [--run RUN_ID] [--reports-dir reports] [--stand-in]

Needs a run with the host's cells (the main job's); the stand-in part needs the default
garden built in build/ and root (CPU bandwidth control).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.estimate import (  # noqa: E402
    Estimator,
    catalog_phones,
    host_index_of,
    load_calibrations,
    make_estimator,
    published_evidence,
)
from edge.reference_points import load_reference_points  # noqa: E402
from edge.report.table import load_run  # noqa: E402
from edge.results.store import latest_run  # noqa: E402

WITHIN = math.log(1.25)


def leave_one_out(records, phones) -> list[dict]:
    points = load_reference_points()
    evidence = published_evidence(points, records)
    host_index = host_index_of(records)
    by_name = {p.name: p for p in phones}
    full = Estimator(evidence, by_name, host_index)
    rows = []
    for e in evidence:
        f = full.factor(e.phone, e.kind, e.precision, exclude=e)
        index = (host_index / by_name[e.phone].benchmark_index
                 if host_index and by_name.get(e.phone) and by_name[e.phone].benchmark_index
                 else math.nan)
        pred = e.host_ms * f.value
        rows.append({"phone": e.phone, "kind": e.kind, "precision": e.precision,
                     "model": e.model, "threads": e.threads, "source": e.source,
                     "truth": e.phone_ms, "host": e.host_ms, "pred": pred,
                     "err": pred / e.phone_ms, "level": f.level,
                     "inside": f.lo <= e.ratio <= f.hi, "band": f.band,
                     "index_pred": e.host_ms * index,
                     "index_err": e.host_ms * index / e.phone_ms})
    return rows


def _summary(rows, key) -> tuple[float, float, float]:
    errs = [abs(math.log(r[key])) for r in rows if math.isfinite(r[key])]
    if not errs:
        return math.nan, math.nan, math.nan
    return (math.exp(statistics.median(errs)), math.exp(max(errs)),
            sum(x <= WITHIN for x in errs) / len(errs))


def _x(v: float) -> str:
    return "-" if not math.isfinite(v) else f"x{v:.2f}"


def print_table(rows) -> None:
    print("\nEvery published point, left out in turn (estimate / published; 'in' = inside the "
          "stated 80 % interval):")
    print(f"{'phone':10} {'kind':6} {'prec':6} {'model':18} {'thr':>3} {'published':>9} "
          f"{'estimate':>9} {'err':>6} {'level':20} {'in':3} {'index err':>9}  source")
    for r in rows:
        print(f"{r['phone']:10} {r['kind']:6} {r['precision']:6} {r['model']:18} "
              f"{r['threads'] or '-':>3} {r['truth']:9.3g} {r['pred']:9.3g} "
              f"{_x(r['err']):>6} {r['level']:20} {'yes' if r['inside'] else 'no':3} "
              f"{_x(r['index_err']):>9}  {r['source']}")
    print("\nPer phone and runtime kind: median and worst |error| (as a factor), share within "
          "+-25 %, coverage of the 80 % interval; the bare index ratio beside it")
    print(f"{'phone':10} {'kind':6} {'n':>3} | {'est median':>10} {'worst':>7} {'<=25%':>6} "
          f"{'coverage':>9} | {'index median':>12} {'worst':>7} {'<=25%':>6}")
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["phone"], r["kind"]), []).append(r)
    for (phone, kind), g in sorted(groups.items()):
        m, w, s = _summary(g, "err")
        im, iw, is_ = _summary(g, "index_err")
        cov = sum(r["inside"] for r in g)
        print(f"{phone:10} {kind:6} {len(g):3} | {_x(m):>10} {_x(w):>7} {s:6.0%} "
              f"{cov:4}/{len(g):<4} | {_x(im):>12} {_x(iw):>7} {is_:6.0%}")
    for kind in sorted({r["kind"] for r in rows}):
        g = [r for r in rows if r["kind"] == kind]
        m, w, s = _summary(g, "err")
        im, iw, is_ = _summary(g, "index_err")
        cov = sum(r["inside"] for r in g)
        print(f"{'ALL':10} {kind:6} {len(g):3} | {_x(m):>10} {_x(w):>7} {s:6.0%} "
              f"{cov:4}/{len(g):<4} | {_x(im):>12} {_x(iw):>7} {is_:6.0%}")
    cov = sum(r["inside"] for r in rows)
    print(f"\ncoverage of the stated 80 % intervals: {cov}/{len(rows)} "
          f"({cov / max(1, len(rows)):.0%}) published points inside")


STAND_IN = """
[profiles.standin]
label = "Stand-in device (this host under a CPU quota, one thread)"
tier = "mid"
descriptor = "Pixel 5"
cpu_slowdown = 3.0
cores = 2
network = "none"
memory_class = 4
emulated = true
"""

#: Models outside the reference set, predicted on the stand-in.
STAND_IN_OTHERS = ("efficientnet_b0", "deeplab_v3", "psenet")


def stand_in(build_dir: Path, work: Path) -> list[dict]:
    """Calibrate the stand-in on the reference set, then predict other models on it."""
    from edge import workflow
    from edge.farm.emulation.devices import DEFAULT_CATALOG
    from edge.farm.scheduling.matrix import Matrix
    from edge.results.store import ResultStore

    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + STAND_IN,
                       encoding="utf-8")
    out = work / "calibrations.toml"
    out.unlink(missing_ok=True)
    workflow.calibrate("standin", catalog=catalog, runtimes=["litert"], device_threads=1,
                       build_dir=build_dir, reports_dir=work / "reports", out=out)
    variants = list(workflow.CALIBRATION_VARIANTS)
    rules = [{"models": list(STAND_IN_OTHERS), "variants": variants, "runtimes": ["litert"],
              "devices": ["host"], "interleave": False},
             {"models": list(STAND_IN_OTHERS), "variants": variants, "runtimes": ["litert"],
              "devices": ["standin"], "threads": [1], "interleave": False}]
    matrix = Matrix(path=Path("stand-in check"), models=list(STAND_IN_OTHERS),
                    variants=variants, build_dir=build_dir, devices=["host", "standin"],
                    reports_dir=work / "reports", rules=rules)
    run_dir = workflow.measure(matrix, catalog=str(catalog))
    records = [r for r in ResultStore(run_dir).records() if r["status"] == "ok"]
    host = [r for r in records if r["device"] == "host"]
    estimator = make_estimator(host, [], catalog_phones(catalog), load_calibrations(out))
    rows = []
    for r in records:
        if r["device"] != "standin":
            continue
        h = next((x for x in host if (x["model"], x["variant"]) == (r["model"], r["variant"])),
                 None)
        if h is None:
            continue
        from edge.estimate import precision_of, slot

        f = estimator.factor("standin", "native",
                             slot(precision_of(r["variant"]), h.get("threads")))
        hp, tp = h["metrics"]["latency"]["p50"], r["metrics"]["latency"]["p50"]
        rows.append({"model": r["model"], "variant": r["variant"], "host": hp, "truth": tp,
                     "pred": hp * f.value, "err": hp * f.value / tp, "level": f.level,
                     "lo": hp * f.lo, "hi": hp * f.hi, "inside": hp * f.lo <= tp <= hp * f.hi})
    print("\nStand-in device (this host under a 3x CPU quota on 1 thread; host on 2 threads), "
          "calibrated on mobilenet_v2 + efficientnet_lite0 (float32, full int8):")
    print(f"{'model':26} {'variant':18} {'host ms':>8} {'measured':>9} {'predicted':>9} "
          f"{'80 % interval':>17} {'err':>6} inside")
    for r in rows:
        print(f"{r['model']:26} {r['variant']:18} {r['host']:8.3g} {r['truth']:9.3g} "
              f"{r['pred']:9.3g} {r['lo']:8.3g}-{r['hi']:<8.3g} {_x(r['err']):>6} "
              f"{'yes' if r['inside'] else 'NO'}")
    inside = sum(r["inside"] for r in rows)
    print(f"stand-in: {inside}/{len(rows)} predictions inside their stated interval; models "
          f"outside: {', '.join(sorted({r['model'] for r in rows if not r['inside']})) or 'none'}")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run id (default: the latest run)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--stand-in", action="store_true",
                        help="also calibrate and check a stand-in device (root; minutes)")
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    args = parser.parse_args(argv)
    run = args.run or latest_run(args.reports_dir)
    if run is None:
        raise SystemExit(f"no run under {args.reports_dir}: run the main job first")
    records, _ = load_run(args.reports_dir, run)
    phones = catalog_phones()
    print(f"run {run}: host benchmark index {host_index_of(records)}")
    rows = leave_one_out(records, phones)
    if not rows:
        raise SystemExit("no published point pairs with a host cell of this run")
    print_table(rows)
    if args.stand_in:
        stand_in(args.build_dir, Path("build") / "stand-in")


if __name__ == "__main__":
    main()
