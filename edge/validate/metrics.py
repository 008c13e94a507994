"""Task-aware fidelity metrics: a variant's outputs against the float32 reference's.

All functions take batches: (N, classes) for classification, (N, H, W, classes) logits for
segmentation, (N, H, W, kernels) sigmoid maps for text detection. Where the reference gives
nothing to compare, the metric is None with a note, never a perfect score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Elements per chunk of the float64 sums (a few MB of temporaries, not a float64 copy of a
#: whole segmentation batch).
_CHUNK = 1 << 22


def _sum_squares(x: np.ndarray, minus: np.ndarray | float = 0.0) -> float:
    """Sum of (x - minus)² (`minus` an array of x's shape, or a number) accumulated in float64,
    chunk by chunk."""
    flat = np.asarray(x).reshape(-1)
    other = np.asarray(minus).reshape(-1) if np.ndim(minus) else None
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        c = flat[start:start + _CHUNK].astype(np.float64)
        c -= other[start:start + _CHUNK] if other is not None else float(minus)
        total += float(np.dot(c, c))
    return total


def snr_db(reference: np.ndarray, variant: np.ndarray) -> float:
    """Signal-to-noise ratio of the variant's output in dB, signal centred on its mean."""
    signal = _sum_squares(reference, float(np.mean(reference, dtype=np.float64)))
    noise = _sum_squares(reference, variant)
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


def max_abs_error(reference: np.ndarray, variant: np.ndarray) -> float:
    """The largest absolute difference, chunk by chunk."""
    ref, var = np.asarray(reference).reshape(-1), np.asarray(variant).reshape(-1)
    worst = 0.0
    for start in range(0, ref.size, _CHUNK):
        diff = np.abs(ref[start:start + _CHUNK].astype(np.float64)
                      - var[start:start + _CHUNK].astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def any_output(reference: np.ndarray, variant: np.ndarray) -> dict:
    """Figures for an output whose role is not known: SNR and the largest error."""
    return {"snr_db": snr_db(reference, variant),
            "max_abs_error": max_abs_error(reference, variant)}


def classification(reference: np.ndarray, variant: np.ndarray) -> dict:
    ref_top1 = reference.argmax(axis=-1)
    k = min(5, reference.shape[-1])
    var_top5 = np.argsort(-variant, axis=-1)[:, :k]
    return {
        "top1_agreement": float(np.mean(ref_top1 == variant.argmax(axis=-1))),
        "top5_agreement": float(np.mean([r in row for r, row in zip(ref_top1, var_top5,
                                                                    strict=True)])),
        "snr_db": snr_db(reference, variant),
        "reference_classes": int(len(np.unique(ref_top1))),
    }


def mean_iou(ref_mask: np.ndarray, var_mask: np.ndarray) -> float:
    """Mean IoU over the classes present in either mask (of the whole batch), from one
    confusion matrix."""
    ref = np.asarray(ref_mask).reshape(-1).astype(np.int64)
    var = np.asarray(var_mask).reshape(-1).astype(np.int64)
    k = int(max(ref.max(initial=0), var.max(initial=0))) + 1
    confusion = np.bincount(ref * k + var, minlength=k * k).reshape(k, k)
    both = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - both
    present = union > 0
    return float(np.mean(both[present] / union[present]))


def segmentation(reference: np.ndarray, variant: np.ndarray) -> dict:
    ref_mask, var_mask = reference.argmax(axis=-1), variant.argmax(axis=-1)
    return {
        "pixel_agreement": float(np.mean(ref_mask == var_mask)),
        "mean_iou": mean_iou(ref_mask, var_mask),
        "snr_db": snr_db(reference, variant),
        "reference_classes": int(len(np.unique(ref_mask))),
    }


def text_detection(reference: np.ndarray, variant: np.ndarray) -> dict:
    from edge import pse

    ious, matched, n_pred, n_ref = [], 0, 0, 0
    for ref_maps, var_maps in zip(reference, variant, strict=True):
        iou = pse.kernel_iou(ref_maps, var_maps)
        if iou is not None:
            ious.append(iou)
        f1 = pse.box_f1(pse.detect(var_maps), pse.detect(ref_maps))
        matched += f1["matched"]
        n_pred += f1["n_pred"]
        n_ref += f1["n_ref"]
    result: dict = {"kernel_iou": float(np.mean(ious)) if ious else None,
                    "snr_db": snr_db(reference, variant),
                    "reference_boxes": n_ref, "variant_boxes": n_pred}
    if n_ref == 0:
        result.update(box_f1=None, note="reference has no boxes")
    else:
        precision = matched / n_pred if n_pred else 0.0
        recall = matched / n_ref
        result["box_f1"] = (2 * precision * recall / (precision + recall)
                            if precision + recall else 0.0)
    if not ious:
        result["note"] = "reference and variant kernel maps are empty"
    return result


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], dict]] = {
    "classification": classification,
    "segmentation": segmentation,
    "text_detection": text_detection,
}


def precision_class(quantization: str) -> str:
    """Which threshold column applies: float variants are held to a stricter standard."""
    return "float" if quantization in ("fp32", "fp16", "none", "float16", "as-is") \
        else "quantized"


def judge(figures: dict, thresholds: dict, quantization: str) -> tuple[str, list[str]]:
    """pass / warn / fail from the spec's thresholds; returns the status and the reasons."""
    column = precision_class(quantization)
    status, reasons = "pass", []
    for metric, levels in thresholds.items():
        value = figures.get(metric)
        if value is None:
            reasons.append(f"{metric}: n/a")
            continue
        pass_at, warn_at = levels[column]
        if value < warn_at:
            status = "fail"
            reasons.append(f"{metric} {value:.3f} < {warn_at} (fail)")
        elif value < pass_at:
            status = "warn" if status == "pass" else status
            reasons.append(f"{metric} {value:.3f} < {pass_at} (warn)")
    if all(figures.get(m) is None for m in thresholds):
        status = "n/a"
    return status, reasons


#: Output rank each task's metrics read (batch included).
TASK_RANK = {"classification": 2, "segmentation": 4, "text_detection": 4}

#: Statuses from best to worst; the worst output's is the variant's.
STATUS_ORDER = ("n/a", "pass", "warn", "fail")


def worst_status(statuses) -> str:
    return max(statuses, key=STATUS_ORDER.index, default="n/a")


def match_outputs(ref_names: list[str], ref_shapes: list[tuple],
                  got: dict[str, tuple]) -> tuple[list[str], str]:
    """Which of a variant's outputs (name -> per-image shape) is each reference output, and
    how that was decided: the same names (a conversion keeps the signature's output names),
    else each reference shape found once among the variant's, else the same order."""
    if len(got) != len(ref_names):
        raise ValueError(f"the variant has {len(got)} outputs, the reference {len(ref_names)}")
    if set(got) == set(ref_names):
        return list(ref_names), "name"
    shapes = [tuple(s) for s in ref_shapes]
    if len(set(shapes)) == len(shapes):
        by_shape = {tuple(s): n for n, s in got.items()}
        if len(by_shape) == len(got) and all(s in by_shape for s in shapes):
            return [by_shape[s] for s in shapes], "shape"
    return list(got), "order"


def compare_outputs(task: str, names: list[str], references: list[np.ndarray],
                    variants: list[np.ndarray], thresholds: dict, quantization: str,
                    output_thresholds: dict) -> list[dict]:
    """Per-output figures and verdicts of a variant's outputs against the reference's (both
    lists in the reference's order). The first output is the task's where its rank fits the
    task (its metrics and thresholds); the others are judged on `output_thresholds`."""
    results = []
    for i, (name, ref, var) in enumerate(zip(names, references, variants, strict=True)):
        var = np.asarray(var).reshape(ref.shape)
        if i == 0 and ref.ndim == TASK_RANK[task]:
            role, figures = task, METRICS[task](ref, var)
            figures["max_abs_error"] = max_abs_error(ref, var)
            status, reasons = judge(figures, thresholds, quantization)
            if figures.get("note"):
                reasons.append(figures["note"])
        else:
            role, figures = "output", any_output(ref, var)
            status, reasons = judge(figures, output_thresholds, quantization)
        results.append({"name": name, "shape": [1, *ref.shape[1:]], "role": role,
                        "status": status, "figures": figures, "reasons": reasons})
    return results
