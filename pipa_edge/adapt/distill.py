"""Distillation of a larger adapted teacher into the compact student on target images.

Shapes: student and teacher logits ``(B, K, H, W)`` on the same (clean) target images::

    L_kd = T^2 * KL( softmax(t / T) || softmax(s / T) )          (mean over pixels)
    L_pl = mean_pixels [ conf_t >= thr ] * CE(s, argmax t)          (hard pseudo-labels)
    L    = weight * L_kd + pseudo_weight * L_pl
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
                 weight: float = 1.0, pseudo_weight: float = 0.5, threshold: float = 0.9) -> tuple[torch.Tensor, dict]:
    s = student_logits.float()
    t = teacher_logits.detach().float()
    if t.shape[-2:] != s.shape[-2:]:
        t = F.interpolate(t, size=s.shape[-2:], mode="bilinear", align_corners=False)
    T = float(temperature)
    log_ps = F.log_softmax(s / T, dim=1)
    pt = F.softmax(t / T, dim=1)
    kd = (pt * (torch.log(pt.clamp_min(1e-8)) - log_ps)).sum(dim=1).mean() * T * T
    conf, lab = F.softmax(t, dim=1).max(dim=1)
    ce = F.cross_entropy(s, lab, reduction="none")
    pl = (ce * (conf >= threshold).float()).mean()
    return weight * kd + pseudo_weight * pl, {"loss_kd": float(kd.detach()), "loss_kd_pl": float(pl.detach())}


class FrozenTeacher(nn.Module):
    """A larger adapted segmenter loaded from a pipa-edge checkpoint, frozen and in eval mode."""

    def __init__(self, checkpoint: str):
        super().__init__()
        from pipa_edge.models.io import load_segmenter

        self.model = load_segmenter(checkpoint)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, img_uint8: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(self.model.normalize(img_uint8))
