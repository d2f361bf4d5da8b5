"""Segmentation metrics from a confusion matrix, NumPy only (shared by train/eval, export gates, benches).

Conventions (state them wherever a number is reported):

* The confusion matrix ``cm`` is ``(K, K) int64`` with ``cm[gt, pred]`` = number of pixels whose
  ground truth is ``gt`` and whose prediction is ``pred``. Pixels whose label is the ignore index
  (or any value outside ``[0, K)``) are not counted. It is accumulated over the *whole dataset*
  (not averaged per image).
* ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; NaN where the denominator is 0.
* mIoU — ``present="gt"`` (the default, the standard): mean of ``IoU_c`` over the classes that
  have ground-truth pixels in the evaluated data. A class absent from the ground truth does not
  enter the mean, even if it was predicted (its false positives still lower the IoU of the
  classes whose pixels were taken).
  ``present="union"`` (only when asked): mean over classes present in the ground truth *or* the
  prediction (mmseg's ``nanmean``): a class never labelled but predicted counts as IoU 0.
  ``present="all"``: mean over all K classes, absent classes counting as 0.
* Pixel accuracy = trace / total counted pixels; mean class accuracy over GT-present classes.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Present = Literal["gt", "union", "all"]


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """``(K, K) int64`` confusion matrix of integer arrays of the same shape (NumPy; torch tensors on
    their device: :func:`pipa_edge.train.metrics.confusion_matrix_torch`).

    ``target`` values equal to ``ignore_index`` or outside ``[0, K)`` are skipped; predictions
    outside ``[0, K)`` are an error (a model always predicts one of its classes).
    """
    p = np.asarray(pred).astype(np.int64).ravel()
    t = np.asarray(target).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction has {p.size} pixels but target has {t.size}")
    keep = (t >= 0) & (t < num_classes) & (t != ignore_index)
    p, t = p[keep], t[keep]
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"prediction holds a class index outside [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(cm) -> np.ndarray:
    """``(K,) float64`` IoU per class; NaN where the class is in neither GT nor prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def class_mask(cm, present: Present = "gt") -> np.ndarray:
    """Boolean ``(K,)``: which classes enter the mean under the ``present`` convention."""
    cm = np.asarray(cm)
    if present == "gt":
        return cm.sum(1) > 0
    if present == "union":
        return (cm.sum(1) + cm.sum(0)) > 0
    if present == "all":
        return np.ones(cm.shape[0], bool)
    raise ValueError(f"present must be 'gt', 'union' or 'all', not {present!r}")


def mean_iou(cm, present: Present = "gt") -> float:
    """mIoU under the chosen convention (see the module docstring); NaN if no class qualifies."""
    iou = np.nan_to_num(iou_per_class(cm), nan=0.0)
    mask = class_mask(cm, present)
    return float(iou[mask].mean()) if mask.any() else float("nan")


def pixel_accuracy(cm) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def class_accuracy(cm) -> np.ndarray:
    """``(K,)`` recall per class (TP / GT pixels); NaN for classes absent from the GT."""
    cm = np.asarray(cm, dtype=np.float64)
    gt = cm.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gt > 0, np.diag(cm) / np.where(gt > 0, gt, 1), np.nan)


def summarize(cm, class_names: Sequence[str], present: Present = "gt") -> dict:
    """Everything a report needs, JSON-ready (NaN → None). mIoU/accuracies are in [0, 1]."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names")
    iou, acc = iou_per_class(cm), class_accuracy(cm)
    gt_mask = class_mask(cm, "gt")

    def clean(v: float):
        return None if v != v else float(v)

    return {
        "miou": clean(mean_iou(cm, present)),
        "miou_convention": present,
        "pixel_acc": clean(pixel_accuracy(cm)),
        "mean_acc": clean(float(np.nanmean(acc)) if gt_mask.any() else float("nan")),
        "per_class_iou": {n: clean(v) for n, v in zip(class_names, iou)},
        "per_class_acc": {n: clean(v) for n, v in zip(class_names, acc)},
        "classes_in_gt": [n for n, m in zip(class_names, gt_mask) if m],
        "pixels": int(cm.sum()),
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
