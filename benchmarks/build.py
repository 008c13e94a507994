"""Build benchmark: cold build of the default garden into a fresh cache, then a no-op rebuild.

Prints wall-clock figures (targets on a 2-core machine: cold <= 8 min, no-op <= 5 s).
Usage: python benchmarks/build.py [-j N] [--tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    from edge import workflow

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="tiny configurations")
    parser.add_argument("--keep", type=Path, help="build here and keep the cache")
    args = parser.parse_args()
    build_dir = args.keep or Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        targets = workflow.garden_targets(tiny=args.tiny)
        t0 = time.perf_counter()
        cold = workflow.build(targets, build_dir, jobs=args.jobs)
        keys = workflow.artifact_keys(cold)
        t1 = time.perf_counter()
        workflow.validate(keys, build_dir)
        t2 = time.perf_counter()
        noop = workflow.build(targets, build_dir, jobs=args.jobs)
        workflow.validate(workflow.artifact_keys(noop), build_dir)
        t3 = time.perf_counter()
        print(f"cold build:      {t1 - t0:7.1f} s  ({cold.line()}; target <= 480 s)")
        print(f"host validation: {t2 - t1:7.1f} s  ({len(keys)} artifacts)")
        print(f"no-op rebuild:   {t3 - t2:7.3f} s  ({noop.line()}; target <= 5 s)")
        if cold.failures or noop.converted:
            raise SystemExit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(build_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
