"""The training-method plug-in seen by the trainer.

A :class:`TrainMethod` owns the plain :class:`~pipa_edge.models.Segmenter` plus anything that
exists only during training (projection heads, EMA teacher, memory banks). The trainer owns data,
optimiser, schedule, AMP, DDP, checkpoints and logging, and calls per iteration::

    loss, logs = method.training_step(batch, it)   # one summed loss
    scaler.scale(loss).backward()                  # the only backward() of the step
    optimizer step ...
    method.after_optimizer_step(it)                # e.g. EMA teacher update

``batch`` is ``{"source": {"image": uint8 (B,3,H,W), "label": int64 (B,H,W)},
"target": {"image": uint8 (B,3,H,W), ...}}``; ``"target"`` is present when the config names a
target dataset (video recipes add ``"image_prev"`` and optional ``"flow"``). Images stay uint8
until the method normalises them on the device with ``segmenter.normalize``.

``state_dict()`` (plain ``nn.Module``) holds everything the method needs to resume; the exported
model is ``method.segmenter`` alone. The base class lives in ``adapt`` (the adapters subclass it);
``source_only`` and :func:`~pipa_edge.train.method.build_method` are in :mod:`pipa_edge.train.method`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.models.segmenter import Segmenter


class TrainMethod(nn.Module):
    name = "base"

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        self.segmenter = segmenter
        # per-class weights of the supervised source cross-entropy (``loss.class_weights``); a plain
        # attribute, not a buffer: recomputed from the config at setup, never in a checkpoint
        self.class_weights: Optional[torch.Tensor] = None

    def source_ce(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits`` (B, K, H, W) against source ``label`` (B, H, W); ignore
        index excluded; weighted by ``class_weights`` when set (then a weighted mean, as PyTorch)."""
        w = self.class_weights.to(logits.device) if self.class_weights is not None else None
        return F.cross_entropy(logits.float(), label, weight=w, ignore_index=self.segmenter.classes.ignore_index)

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError

    def after_optimizer_step(self, it: int) -> None:
        """Called after each optimiser step (EMA updates, memory banks)."""

    def trainable_parameters(self):
        """Parameters the optimiser updates (segmenter + training-only heads; never the teacher)."""
        return [p for p in self.parameters() if p.requires_grad]
