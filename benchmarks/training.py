"""Training benchmark: train garden models on their synthetic tasks, print per model the
training time and the float32 held-out accuracy (95 % bootstrap interval) against its target.

Each model is trained alone (every core), with the schedule a build uses unless overridden;
DeepLab's heads share one training. The held-out figure is the exported model's: full input size,
batch-norm statistics measured on the calibration images, the same 200 held-out images the
build scores. Usage: python benchmarks/training.py [MODEL ...] [--scale F --images N
--epochs E --batch B
--learning-rate LR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import numpy as np

    from edge import accuracy as acc
    from edge.convert.reference import BN_IMAGES
    from edge.garden import DEFAULT_GARDEN, resolve
    from edge.garden.datasets import evaluation_set
    from edge.garden.training import (
        ACCURACY_TARGETS,
        CALIBRATION_IMAGES,
        CALIBRATION_SEED,
        HOLDOUT_IMAGES,
        HOLDOUT_SEED,
        WEIGHTS_FILE,
        load_trained_model,
        save_weights,
        schedule_for,
        train,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", help="garden models (default: the default garden)")
    parser.add_argument("--scale", type=float)
    parser.add_argument("--images", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch", type=int)
    args = parser.parse_args()
    overrides = {k: v for k, v in (("scale", args.scale), ("images", args.images),
                                   ("epochs", args.epochs), ("batch", args.batch),
                                   ("learning_rate", args.learning_rate)) if v is not None}
    rows, trained, total = [], {}, 0.0
    work = Path(tempfile.mkdtemp(prefix="edge-train-"))
    for text in args.models or DEFAULT_GARDEN:
        config = resolve(text)
        schedule = dataclasses.replace(schedule_for(config), **overrides)
        shared = (config.spec.name, tuple(sorted((k, v) for k, v in config.params.items()
                                                 if k != "head")))
        if shared not in trained:
            print(f"training {config.slug} ({schedule})", flush=True)
            model, facts = train(config, schedule, on_epoch=lambda e, n, logs: print(
                f"  epoch {e}/{n} loss {logs.get('loss', float('nan')):.4f}", flush=True))
            folder = work / str(len(trained))
            folder.mkdir()
            save_weights(model, folder / WEIGHTS_FILE)
            trained[shared] = (folder, facts)
            total += facts["seconds"]
        folder, facts = trained[shared]
        size = config.input_size
        calibration = evaluation_set(config.task, size, n=CALIBRATION_IMAGES,
                                     seed=CALIBRATION_SEED).images
        prep = config.spec.preprocessing.apply
        model = load_trained_model(config, folder, prep(calibration[:BN_IMAGES]))
        holdout = evaluation_set(config.task, size, n=HOLDOUT_IMAGES, seed=HOLDOUT_SEED)
        truth = (holdout.labels if config.task == "classification" else holdout.masks
                 if config.task == "segmentation" else holdout.boxes)
        classes = acc.segmentation_classes(truth) if config.task == "segmentation" else None
        started = time.perf_counter()
        stats = acc.holdout_stats(config.task, lambda x, m=model: np.asarray(m(x, training=False)),
                                  holdout.images, truth, prep, classes)
        value = acc.figure(config.task, stats)
        lo, hi = acc.bootstrap_interval(config.task, stats)
        rows.append((config.slug, facts["seconds"], facts["train_size"][0], schedule.images,
                     schedule.epochs, acc.METRIC_NAME[config.task], value, lo, hi,
                     ACCURACY_TARGETS[config.task], time.perf_counter() - started))
    print(f"\n{'model':28} {'train s':>8} {'size':>5} {'images':>7} {'ep':>3} {'metric':>6} "
          f"{'held-out':>9} {'95% CI':>13} {'target':>7}  gap")
    for slug, seconds, tsize, images, epochs, metric, value, lo, hi, target, _ in rows:
        gap = "met" if value >= target else f"short by {target - value:.3f}"
        print(f"{slug:28} {seconds:8.1f} {tsize:5} {images:7} {epochs:3} {metric:>6} "
              f"{value:9.3f} {lo:6.3f}-{hi:6.3f} {target:7.2f}  {gap}")
    print(f"training time, all models: {total:.0f} s (n = {len(trained)} trainings, "
          f"{HOLDOUT_IMAGES} held-out images each)")


if __name__ == "__main__":
    main()
