"""Task accuracy against labels, and its verdict as a fraction of the float32 accuracy.

Per image, a variant's outputs reduce to counts whose sums give the task's figure, so a paired
bootstrap over images gives an interval for a variant's drop against float32:

- classification: correct (1) or not (0) for the top-1 label; figure = top-1 accuracy;
- segmentation: per class present in the labels, true positives, false positives and false
  negatives; figure = mean IoU over those classes;
- text detection: boxes matched at IoU 0.5 (one-to-one), predicted boxes, labelled boxes;
  figure = F1 (2 x matched / (predicted + labelled)).

Verdicts follow MLPerf's convention for quality targets: a variant passes when it keeps a fixed
fraction of the float32 model's accuracy on the same images (`KEEP_FRACTION`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The fraction of float32 accuracy a variant must keep, per task, and why.
KEEP_FRACTION: dict[str, float] = {
    "classification": 0.98,
    "segmentation": 0.97,
    "text_detection": 0.95,
}
FRACTION_REASON: dict[str, str] = {
    "classification": "top-1 is counted per image; calibrated int8 of a trained classifier "
                      "typically loses about a point, and 98 % keeps that while catching worse",
    "segmentation": "mean IoU averages over classes and moves with boundary pixels, which "
                    "quantization shifts first; 97 % allows that and no lost class",
    "text_detection": "box F1 at IoU 0.5 is discrete: a word whose region splits or merges "
                      "costs a whole box, so 95 % on a few hundred words",
}
METRIC_NAME = {"classification": "top1", "segmentation": "miou", "text_detection": "f1"}
BOOTSTRAP_SAMPLES = 1000


def image_stats(task: str, outputs: np.ndarray, truth, classes: np.ndarray | None = None):
    """Per-image counts (see the module docstring) of a batch of outputs against labels."""
    if task == "classification":
        return (np.asarray(outputs).argmax(axis=-1) == np.asarray(truth)).astype(np.int64)
    if task == "segmentation":
        pred = np.asarray(outputs).argmax(axis=-1)
        truth = np.asarray(truth)
        stats = np.zeros((len(pred), len(classes), 3), np.int64)
        for i, c in enumerate(classes):
            t, p = truth == c, pred == c
            stats[:, i, 0] = np.sum(t & p, axis=(1, 2))
            stats[:, i, 1] = np.sum(~t & p, axis=(1, 2))
            stats[:, i, 2] = np.sum(t & ~p, axis=(1, 2))
        return stats
    from edge import pse

    stats = np.zeros((len(outputs), 3), np.int64)
    for i, (maps, quads) in enumerate(zip(outputs, truth, strict=True)):
        found = pse.detect(np.asarray(maps))
        labelled = [pse.TextBox(np.asarray(q, np.float32), 0, 1.0, 0) for q in quads]
        f1 = pse.box_f1(found, labelled)
        stats[i] = (f1["matched"], f1["n_pred"], f1["n_ref"])
    return stats


def holdout_stats(task: str, run, images: np.ndarray, truth, preprocess,
                  classes: np.ndarray | None = None, chunk: int = 8) -> np.ndarray:
    """Per-image counts of a model over a labelled set, `chunk` images at a time (a
    segmentation model's logits for 200 images would be gigabytes): `run` maps preprocessed
    inputs to outputs."""
    parts = []
    for start in range(0, len(images), chunk):
        outputs = run(preprocess(np.asarray(images[start:start + chunk])))
        parts.append(image_stats(task, outputs, truth[start:start + chunk], classes))
    return np.concatenate(parts)


def figure(task: str, stats: np.ndarray) -> float:
    """The task's accuracy figure from per-image counts (summed over axis 0)."""
    if task == "classification":
        return float(np.mean(stats))
    total = np.asarray(stats).sum(axis=0)
    if task == "segmentation":
        tp, fp, fn = total[:, 0], total[:, 1], total[:, 2]
        union = tp + fp + fn
        present = union > 0
        return float(np.mean(tp[present] / union[present])) if present.any() else 0.0
    matched, n_pred, n_true = total
    return float(2 * matched / (n_pred + n_true)) if n_pred + n_true else 0.0


def _figures(task: str, stats: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The figure of each bootstrap resample (rows of `index`), vectorised."""
    picked = np.asarray(stats)[index]  # (B, N, ...)
    if task == "classification":
        return picked.mean(axis=1)
    total = picked.sum(axis=1)
    if task == "segmentation":
        union = total[..., 0] + total[..., 1] + total[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, total[..., 0] / np.maximum(union, 1), np.nan)
        return np.nanmean(iou, axis=1)
    denom = total[:, 1] + total[:, 2]
    return np.where(denom > 0, 2 * total[:, 0] / np.maximum(denom, 1), 0.0)


@dataclass
class Accuracy:
    task: str
    metric: str
    value: float
    reference: float
    drop: float
    drop_interval: tuple[float, float]
    fraction: float
    verdict: str  # pass | fail
    images: int
    data: str

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "value": self.value,
                "reference": self.reference, "drop": self.drop,
                "drop_interval": list(self.drop_interval), "fraction": self.fraction,
                "verdict": self.verdict, "images": self.images, "data": self.data}

    def reason(self) -> str:
        lo, hi = self.drop_interval
        head = (f"{self.metric} {self.value:.3f} vs float32 {self.reference:.3f}: drop "
                f"{100 * self.drop:+.1f} points [95% CI {100 * lo:+.1f}, {100 * hi:+.1f}]")
        if self.reference <= 0:
            return f"{head}; float32 scores 0 on these {self.images} images: no verdict"
        return (f"{head}, keeps {self.value / self.reference:.1%} (needs {self.fraction:.0%}) "
                f"on {self.images} images")


def compare(task: str, variant: np.ndarray, reference: np.ndarray, data: str,
            seed: int = 0) -> Accuracy:
    """A variant's accuracy, its drop against float32 with a paired bootstrap 95 % interval
    (the same resampled images for both), and the verdict."""
    n = len(reference)
    value, ref = figure(task, variant), figure(task, reference)
    index = np.random.default_rng(seed).integers(0, n, (BOOTSTRAP_SAMPLES, n))
    drops = _figures(task, reference, index) - _figures(task, variant, index)
    lo, hi = (float(v) for v in np.nanpercentile(drops, [2.5, 97.5]))
    fraction = KEEP_FRACTION[task]
    # A float32 model that scores nothing leaves nothing to keep: no verdict.
    verdict = "n/a" if ref <= 0 else "pass" if value >= fraction * ref else "fail"
    return Accuracy(task, METRIC_NAME[task], value, ref, ref - value, (lo, hi), fraction,
                    verdict, n, data)


def bootstrap_interval(task: str, stats: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of one model's figure."""
    n = len(stats)
    index = np.random.default_rng(seed).integers(0, n, (BOOTSTRAP_SAMPLES, n))
    lo, hi = np.nanpercentile(_figures(task, stats, index), [2.5, 97.5])
    return float(lo), float(hi)


# -- the held-out set and the float32 model's counts, stored with the reference ----------------

HOLDOUT_IMAGES_FILE = "holdout_images.npy"
HOLDOUT_TRUTH_FILE = "holdout_truth.npz"
HOLDOUT_STATS_FILE = "holdout_stats.npy"


FIDELITY_TRUTH_FILE = "fidelity_truth.npz"


def truth_of(evalset):
    """The labels of a labelled set, by task: class indices, masks or word quadrilaterals."""
    return (evalset.labels if evalset.task == "classification" else evalset.masks
            if evalset.task == "segmentation" else evalset.boxes)


def save_truth(path, task: str, truth) -> None:
    if task == "classification":
        np.savez(path, labels=np.asarray(truth))
    elif task == "segmentation":
        np.savez(path, masks=np.asarray(truth))
    else:
        counts = np.array([len(b) for b in truth], np.int64)
        boxes = (np.concatenate([np.asarray(b, np.float32).reshape(-1, 4, 2) for b in truth])
                 if counts.sum() else np.zeros((0, 4, 2), np.float32))
        np.savez(path, boxes=boxes, counts=counts)


def load_truth(path):
    with np.load(path) as data:
        if "labels" in data.files:
            return data["labels"]
        if "masks" in data.files:
            return data["masks"]
        boxes, counts = data["boxes"], data["counts"]
    ends = np.cumsum(counts)
    return [boxes[e - c:e] for c, e in zip(counts, ends, strict=True)]


def save_holdout(folder, holdout) -> None:
    """Write a labelled set's images and labels (`edge.garden.datasets.EvalSet`)."""
    from pathlib import Path

    folder = Path(folder)
    np.save(folder / HOLDOUT_IMAGES_FILE, np.ascontiguousarray(holdout.images))
    save_truth(folder / HOLDOUT_TRUTH_FILE, holdout.task, truth_of(holdout))


def load_holdout(folder):
    """(images (memory-mapped), labels) of a stored held-out set: class indices, masks, or a
    list of (k, 4, 2) word quadrilaterals per image."""
    from pathlib import Path

    folder = Path(folder)
    return (np.load(folder / HOLDOUT_IMAGES_FILE, mmap_mode="r"),
            load_truth(folder / HOLDOUT_TRUTH_FILE))


def segmentation_classes(masks: np.ndarray) -> np.ndarray:
    """The classes present in the labels: those mean IoU averages over."""
    return np.unique(np.asarray(masks))
