"""EMA (mean) teacher.

The teacher is a frozen deep copy of the student segmenter, updated after every optimiser step::

    alpha_it = min(1 - 1 / (it + 1), alpha)          # 0 at it = 0: the teacher starts as a copy
    theta_T  = alpha_it * theta_T + (1 - alpha_it) * theta_S

for every parameter and, when ``ema_buffers`` is true, every floating-point buffer (BN running
mean/var); integer buffers (``num_batches_tracked``) and, with ``ema_buffers=False``, all buffers
are copied from the student. The teacher always runs in eval mode (running BN statistics, no
dropout). It lives on the Adapter, never on the segmenter.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from pipa_edge.models.segmenter import SegOutput, Segmenter


def ema_alpha(it: int, alpha: float) -> float:
    """The EMA factor at iteration ``it``: ``min(1 - 1/(it+1), alpha)``."""
    return min(1.0 - 1.0 / (it + 1), alpha)


class EMATeacher(nn.Module):
    def __init__(self, student: Segmenter, alpha: float = 0.999, ema_buffers: bool = True):
        super().__init__()
        self.model = copy.deepcopy(student)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.alpha = float(alpha)
        self.ema_buffers = bool(ema_buffers)

    def train(self, mode: bool = True) -> "EMATeacher":
        super().train(mode)
        self.model.eval()  # running BN statistics, no dropout
        return self

    @torch.no_grad()
    def update(self, student: Segmenter, it: int) -> float:
        """One EMA step from ``student`` (call after the optimiser step); returns the alpha used."""
        a = ema_alpha(it, self.alpha)
        for pt, ps in zip(self.model.parameters(), student.parameters()):
            pt.mul_(a).add_(ps.detach().to(pt.dtype), alpha=1.0 - a)
        for bt, bs in zip(self.model.buffers(), student.buffers()):
            if self.ema_buffers and bt.is_floating_point():
                bt.mul_(a).add_(bs.detach().to(bt.dtype), alpha=1.0 - a)
            else:
                bt.copy_(bs)
        return a

    @torch.no_grad()
    def forward_features(self, x: torch.Tensor) -> SegOutput:
        self.model.eval()
        return self.model.forward_features(x)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)
