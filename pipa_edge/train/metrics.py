"""Confusion matrices of torch tensors, accumulated on the prediction's device (training/eval loops).

The matrix layout and every metric computed from it (IoU, the mIoU conventions, ``summarize``)
are in :mod:`pipa_edge.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch


def confusion_matrix_torch(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                           ignore_index: int = 255) -> torch.Tensor:
    """:func:`pipa_edge.metrics.confusion_matrix` on the tensors' device; returns a ``(K, K) int64`` tensor."""
    p = pred.reshape(-1).long()
    t = target.reshape(-1).long().to(p.device)
    if p.shape != t.shape:
        raise ValueError(f"prediction has {p.numel()} pixels but target has {t.numel()}")
    keep = (t >= 0) & (t < num_classes) & (t != ignore_index)
    p, t = p[keep], t[keep]
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"prediction holds a class index outside [0, {num_classes})")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class ConfusionMeter:
    """Accumulates a confusion matrix over batches (on the prediction's device)."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.cm: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix_torch(pred, target, self.num_classes, self.ignore_index)
        self.cm = cm if self.cm is None else self.cm + cm

    def matrix(self) -> np.ndarray:
        if self.cm is None:
            return np.zeros((self.num_classes, self.num_classes), np.int64)
        return self.cm.cpu().numpy().astype(np.int64)

    def all_reduce(self) -> None:
        """Sum the matrix over DDP ranks (no-op without an initialised process group)."""
        import torch.distributed as dist

        if self.cm is None:
            self.cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.cm)
