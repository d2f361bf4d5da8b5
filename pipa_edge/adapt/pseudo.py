"""Pseudo-labels from teacher logits, and label downsampling by majority vote.

Given teacher logits ``(B, K, H, W)``::

    p = softmax(logits);  conf, label = max_k p, argmax_k p           # (B, H, W)
    confident = conf >= thr_c        thr_c = threshold, or per class min(threshold, q-quantile)
    quality_b = mean_{h,w} confident[b]                                # (B,) fraction of confident pixels
    weight[b] = quality_b everywhere (quality_weight) | confident (hard mask)
    weight[:, :top] = weight[:, H-bottom:] = 0                         # ignore margins

The label map itself is never set to the ignore index here (the weight carries the confidence);
:func:`confident_labels` gives the "confident-only" labels used by the contrastive objectives.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F


class PseudoLabels(NamedTuple):
    label: torch.Tensor  # (B, H, W) int64 argmax class
    conf: torch.Tensor  # (B, H, W) float max softmax probability
    confident: torch.Tensor  # (B, H, W) bool
    weight: torch.Tensor  # (B, H, W) float per-pixel CE weight
    quality: torch.Tensor  # (B,) fraction of confident pixels


def class_thresholds(conf: torch.Tensor, label: torch.Tensor, num_classes: int, threshold: float,
                     quantile: Optional[float]) -> torch.Tensor:
    """``(K,)`` thresholds: ``threshold``, lowered per class to the ``quantile`` of its confidences."""
    thr = torch.full((num_classes,), float(threshold), device=conf.device)
    if quantile is None:
        return thr
    flat_c, flat_l = conf.reshape(-1).float(), label.reshape(-1)
    for k in torch.unique(flat_l).tolist():
        ck = flat_c[flat_l == k]
        if ck.numel() > 0:
            thr[k] = torch.minimum(thr[k], torch.quantile(ck[:100000], quantile))
    return thr


@torch.no_grad()
def make_pseudo_labels(logits: torch.Tensor, threshold: float = 0.968, quality_weight: bool = True,
                       ignore_top: int = 0, ignore_bottom: int = 0,
                       class_quantile: Optional[float] = None) -> PseudoLabels:
    prob = torch.softmax(logits.detach().float(), dim=1)
    conf, label = prob.max(dim=1)
    thr = class_thresholds(conf, label, logits.shape[1], threshold, class_quantile)
    confident = conf >= thr[label]
    quality = confident.float().mean(dim=(1, 2))
    if quality_weight:
        weight = quality.view(-1, 1, 1).expand_as(conf).clone()
    else:
        weight = confident.float()
    h = weight.shape[1]
    if ignore_top > 0:
        weight[:, : min(ignore_top, h)] = 0.0
    if ignore_bottom > 0:
        weight[:, max(h - ignore_bottom, 0):] = 0.0
    return PseudoLabels(label, conf, confident, weight, quality)


def confident_labels(pl: PseudoLabels, ignore_index: int) -> torch.Tensor:
    """Pseudo-labels with non-confident (or zero-weight margin) pixels set to ``ignore_index``."""
    keep = pl.confident & (pl.weight > 0)
    return torch.where(keep, pl.label, torch.full_like(pl.label, ignore_index))


def downsample_labels(label: torch.Tensor, size: tuple[int, int], num_classes: int, ignore_index: int,
                      min_valid: float = 0.5) -> torch.Tensor:
    """Majority vote of ``(B, H, W)`` labels over the cells of a ``size = (h, w)`` grid.

    Each output cell takes the most frequent *class* among its pixels (ties: lowest index); the
    ignore index never wins: a cell whose labelled fraction is below ``min_valid`` is ignore.
    Returns ``(B, h, w)`` int64.
    """
    b, H, W = label.shape
    h, w = size
    valid = (label >= 0) & (label < num_classes) & (label != ignore_index)
    safe = torch.where(valid, label, torch.zeros_like(label))
    if H % h == 0 and W % w == 0:  # uniform cells (the usual stride-4 case): one bincount, no one-hot map
        cy = torch.arange(H, device=label.device) // (H // h)
        cx = torch.arange(W, device=label.device) // (W // w)
        cell = (cy[:, None] * w + cx[None, :]).expand(b, H, W) + torch.arange(b, device=label.device).view(b, 1, 1) * (h * w)
        key = (cell * num_classes + safe)[valid]
        counts = torch.bincount(key, minlength=b * h * w * num_classes).view(b, h, w, num_classes)
        counts = counts.permute(0, 3, 1, 2).float() / float((H // h) * (W // w))  # (B, K, h, w) class fractions
    else:
        onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1).float()
        counts = F.adaptive_avg_pool2d(onehot, size)  # (B, K, h, w) class fractions per cell
    frac_valid = counts.sum(dim=1)
    _, out = counts.max(dim=1)
    out[frac_valid < min_valid - 1e-6] = ignore_index
    out[frac_valid <= 0] = ignore_index
    return out.view(b, *size).long()


def sample_map(x: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize a ``(B, H, W)`` map (labels: nearest; confidences: bilinear) to ``size``."""
    y = x.unsqueeze(1).float()
    if mode == "nearest":
        return F.interpolate(y, size=size, mode="nearest").squeeze(1).to(x.dtype)
    return F.interpolate(y, size=size, mode=mode, align_corners=False).squeeze(1)
