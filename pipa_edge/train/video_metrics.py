"""Temporal metrics of a segmenter on video: temporal consistency (TC), label flip rate, mIoU.

For consecutive frames ``(t, t+1)`` with predictions ``P_t, P_{t+1} (H, W)`` and the flow
``F (H, W, 2)`` **t+1 → t** (the :mod:`pipa_edge.data.flow` convention for the pair (t+1, t)) with
its occlusion mask ``V`` (forward-backward consistent, in frame)::

    W_t  = warp_nearest(P_t, F)                     P_t brought onto frame t+1's grid
    TC_t = mIoU(W_t, P_{t+1}) over pixels in V       classes present in either map
    flip_t = mean_{x in V} [ W_t(x) != P_{t+1}(x) ]  fraction of non-occluded pixels that change class
    TC   = mean_t TC_t,  flip rate = mean_t flip_t   (averaged over the consecutive pairs of a clip)

Identical predictions with zero flow give TC = 1 and flip rate = 0. mIoU against labels is
reported where a frame has one (:class:`~pipa_edge.train.metrics.ConfusionMeter`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pipa_edge.data.flow import warp_np


def pair_tc(pred_warped: np.ndarray, pred_next: np.ndarray, valid: np.ndarray, num_classes: int) -> float:
    """mIoU between two label maps over ``valid`` pixels (classes present in either); NaN if empty."""
    a, b = pred_warped[valid].astype(np.int64), pred_next[valid].astype(np.int64)
    keep = (a >= 0) & (a < num_classes) & (b >= 0) & (b < num_classes)
    a, b = a[keep], b[keep]
    if a.size == 0:
        return float("nan")
    cm = np.bincount(a * num_classes + b, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def pair_flip_rate(pred_warped: np.ndarray, pred_next: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of ``valid`` pixels whose class differs; NaN if no pixel is valid."""
    n = int(valid.sum())
    if n == 0:
        return float("nan")
    return float((pred_warped[valid] != pred_next[valid]).sum() / n)


def warp_prediction(pred_t: np.ndarray, flow_next_to_t: np.ndarray) -> np.ndarray:
    """``P_t`` on frame t+1's grid (nearest neighbour; -1 outside the frame)."""
    return warp_np(pred_t.astype(np.int32), flow_next_to_t.astype(np.float32), nearest=True, border_value=-1)


class VideoMeter:
    """Accumulates TC and flip rate over the consecutive pairs of one or more clips."""

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.tc: list[float] = []
        self.flip: list[float] = []
        self.valid_frac: list[float] = []

    def update(self, pred_t: np.ndarray, pred_next: np.ndarray, flow_next_to_t: Optional[np.ndarray] = None,
               valid: Optional[np.ndarray] = None) -> tuple[float, float]:
        """Add the pair ``(t, t+1)``; ``flow=None`` means a static camera (zero flow, all valid)."""
        if flow_next_to_t is None:
            warped = pred_t
            valid = np.ones(pred_t.shape, bool) if valid is None else valid
        else:
            warped = warp_prediction(pred_t, flow_next_to_t)
            valid = (np.ones(pred_t.shape, bool) if valid is None else valid) & (warped >= 0)
        tc, fl = pair_tc(warped, pred_next, valid, self.num_classes), pair_flip_rate(warped, pred_next, valid)
        if not np.isnan(tc):
            self.tc.append(tc)
            self.flip.append(fl)
            self.valid_frac.append(float(valid.mean()))
        return tc, fl

    def summary(self) -> dict:
        n = len(self.tc)
        return {"tc": float(np.mean(self.tc)) if n else None, "flip_rate": float(np.mean(self.flip)) if n else None,
                "pairs": n, "valid_frac": float(np.mean(self.valid_frac)) if n else None}
