"""Pixel contrast: supervised pixel-to-pixel InfoNCE on decoder features (PiPa's pixel-wise term).

Shapes: decoder features ``f (B, C, h, w)`` of the student, labels ``y (B, H, W)`` at input
resolution (source GT and confident target pseudo-labels; everything else = ignore index).

    y'  = majority_vote(y, (h, w))        (B, h, w)      ignore never wins (pseudo.downsample_labels)
    anchors a (class-balanced, <= N per class, from the sampler), candidates c (anchors + a random
    class-balanced pool)
    z_c = normalize(g(f_c))               (M, D)         g: training-only projection head (1x1 convs +
                                                         BatchNorm), run on the sampled cells only
    s_ac = z_a . z_c / tau
    P_a = {c != a : y'_c = y'_a},  N_a = sampler.negatives(s, y'_c != y'_a, k)
    L = mean_a  -1/|P_a| sum_{p in P_a} log( e^{s_ap} / (e^{s_ap} + sum_{n in N_a} e^{s_an}) )

BatchNorm caveat: the head is pointwise except for its BatchNorm. In eval mode (running statistics)
projecting only the sampled cells gives exactly the loss of projecting the whole map and indexing it.
In train mode, which is what adaptation uses, the BatchNorm normalises with the mean/variance of the
M sampled cells, not of all B*h*w cells, so the two losses differ (slightly) and the running
statistics track the sampled cells. The training uses the sampled-cells form (cheaper); the head is
dropped at export, so this only affects training.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.adapt.pseudo import downsample_labels
from pipa_edge.adapt.sampling import RandomSampler, info_nce


class ProjectionHead(nn.Module):
    """``Conv1x1(C, C) - BN - ReLU - Conv1x1(C, D)`` then L2 normalisation over channels."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_dim, in_dim, 1, bias=False), nn.BatchNorm2d(in_dim),
                                 nn.ReLU(inplace=True), nn.Conv2d(in_dim, out_dim, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(f).float(), dim=1)


class PixelContrast(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, ignore_index: int, proj_dim: int = 64,
                 temperature: float = 0.1, anchors_per_class: int = 64, negatives_per_anchor: int = 256,
                 min_valid: float = 0.5, sampler: Optional[RandomSampler] = None):
        super().__init__()
        self.head = ProjectionHead(in_dim, proj_dim)
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.temperature = float(temperature)
        self.anchors_per_class, self.negatives_per_anchor = int(anchors_per_class), int(negatives_per_anchor)
        self.min_valid = float(min_valid)
        self.sampler = sampler or RandomSampler()
        self._pool = RandomSampler(self.sampler.generator)
        self.last_stats: dict[str, float] = {}

    def select(self, y: torch.Tensor, score: Optional[torch.Tensor]):
        """Anchor cells (sampler) and candidate cells (anchors + a random class-balanced pool)."""
        a_idx = self.sampler.anchors(y, score, self.anchors_per_class, self.ignore_index, self.num_classes)
        pool = self._pool.anchors(y, None, self.anchors_per_class, self.ignore_index, self.num_classes)
        return a_idx, torch.unique(torch.cat([a_idx, pool]))

    def _loss(self, za, zc, a_idx, c_idx, y) -> torch.Tensor:
        ya, yc = y[a_idx], y[c_idx]
        sim = za @ zc.t() / self.temperature  # (A, M)
        not_self = a_idx.view(-1, 1) != c_idx.view(1, -1)
        pos = (ya.view(-1, 1) == yc.view(1, -1)) & not_self
        neg = self.sampler.negatives(sim.detach(), ya.view(-1, 1) != yc.view(1, -1), self.negatives_per_anchor)
        self.last_stats = {"anchors": float(a_idx.numel()), "candidates": float(c_idx.numel())}
        return info_nce(sim, pos, neg)

    def embed(self, cells: torch.Tensor) -> torch.Tensor:
        """Projected, normalised embeddings ``(M, D)`` of decoder feature cells ``(M, C)``."""
        return self.head(cells.view(*cells.shape, 1, 1)).view(cells.shape[0], -1)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, score: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``features (B, C, h, w)``, ``labels (B, H, W)`` (ignore = unknown), ``score (B, h, w)``.

        Cells are sampled from the labels first; the projection head then runs only on the sampled
        cells, not on the whole feature map (a fraction of the cost). Identical to projecting the
        whole map in eval mode only: in train mode the head's BatchNorm uses the sampled cells'
        batch statistics (see the module docstring)."""
        b, c, h, w = features.shape
        y = labels if labels.shape[-2:] == (h, w) else downsample_labels(
            labels, (h, w), self.num_classes, self.ignore_index, self.min_valid)
        y = y.reshape(-1)
        a_idx, c_idx = self.select(y, None if score is None else score.reshape(-1))
        if a_idx.numel() < 2 or c_idx.numel() < 2:
            self.last_stats = {"anchors": float(a_idx.numel())}
            return features.sum() * 0.0
        ff = features.permute(0, 2, 3, 1).reshape(-1, c)
        zc = self.embed(ff[c_idx])  # (M, D)
        za = zc[torch.searchsorted(c_idx, a_idx)]
        return self._loss(za, zc, a_idx, c_idx, y)
