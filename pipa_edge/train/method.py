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
model is ``method.segmenter`` alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.models.segmenter import Segmenter


class TrainMethod(nn.Module):
    name = "base"

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        self.segmenter = segmenter

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError

    def after_optimizer_step(self, it: int) -> None:
        """Called after each optimiser step (EMA updates, memory banks)."""

    def trainable_parameters(self):
        """Parameters the optimiser updates (segmenter + training-only heads; never the teacher)."""
        return [p for p in self.parameters() if p.requires_grad]


class SourceOnly(TrainMethod):
    """Supervised cross-entropy on labelled source images (ignore index from the class set)."""

    name = "source_only"

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:
        src = batch["source"]
        x = self.segmenter.normalize(src["image"])
        logits = self.segmenter(x)
        loss = F.cross_entropy(logits.float(), src["label"], ignore_index=self.segmenter.classes.ignore_index)
        return loss, {"loss_src": float(loss.detach())}


def build_method(name: str, segmenter: Segmenter, adapt_cfg=None) -> TrainMethod:
    """``source_only`` here; every adaptation method (``mean_teacher``, ``pipa``, ...) comes from
    :func:`pipa_edge.adapt.build_adapter` (imported lazily)."""
    if name == "source_only":
        return SourceOnly(segmenter)
    from pipa_edge.adapt import build_adapter  # noqa: PLC0415

    return build_adapter(name, segmenter, adapt_cfg)
