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

from pathlib import Path
from typing import Optional

import numpy as np
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


class SourceOnly(TrainMethod):
    """Supervised cross-entropy on labelled source images (ignore index from the class set)."""

    name = "source_only"

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:
        src = batch["source"]
        x = self.segmenter.normalize(src["image"])
        logits = self.segmenter(x)
        loss = self.source_ce(logits, src["label"])
        return loss, {"loss_src": float(loss.detach())}


def build_method(name: str, segmenter: Segmenter, adapt_cfg=None) -> TrainMethod:
    """``source_only`` here; every adaptation method (``mean_teacher``, ``pipa``, ...) comes from
    :func:`pipa_edge.adapt.build_adapter` (imported lazily)."""
    if name == "source_only":
        return SourceOnly(segmenter)
    from pipa_edge.adapt import build_adapter  # noqa: PLC0415

    return build_adapter(name, segmenter, adapt_cfg)


def class_weights_from_counts(counts, kind: str, max_weight: float = 10.0) -> np.ndarray:
    """Per-class weights from a pixel histogram ``counts`` (K,) (or per-image counts (N, K), summed).

    ``f_c = n_c / Σ n``; ``sqrt_inv_freq``: ``w_c ∝ f_c^-1/2``; ``inv_freq``: ``w_c ∝ f_c^-1``;
    scaled so that ``Σ_c f_c w_c = 1`` (a frequency-weighted mean of 1), then capped at
    ``max_weight``; a class with no pixel gets 0. ``none``: all ones.
    """
    n = np.asarray(counts, np.float64)
    n = n.sum(axis=0) if n.ndim == 2 else n
    if kind == "none":
        return np.ones_like(n)
    power = {"sqrt_inv_freq": 0.5, "inv_freq": 1.0}.get(kind)
    if power is None:
        raise ValueError(f"unknown class weighting {kind!r}")
    if n.sum() <= 0:
        raise ValueError("class weights need at least one labelled pixel")
    f = n / n.sum()
    w = np.zeros_like(f)
    present = f > 0
    w[present] = f[present] ** -power
    w /= float((f * w).sum())
    return np.minimum(w, max_weight)


def configure_loss(method: TrainMethod, cfg, source, out_dir: Optional[Path] = None) -> Optional[np.ndarray]:
    """Apply ``cfg.loss`` (a :class:`~pipa_edge.train.config.TrainConfig`) to ``method``: with class
    weights, count the source labels' classes (the stored labels of ``source``, cached in the
    rare-class counts file) and set ``method.class_weights``. Returns the weights (None when off)."""
    if cfg.loss.class_weights == "none":
        return None
    from pipa_edge.adapt.rcs import class_pixel_counts  # noqa: PLC0415

    base = getattr(source, "dataset", source)  # the stored labels, not the augmented crops
    cache = cfg.source_sampling.cache or (str(Path(out_dir) / "rcs_counts.json") if out_dir is not None else None)
    counts = class_pixel_counts(base, source.classes.num_classes, cache)
    w = class_weights_from_counts(counts, cfg.loss.class_weights, cfg.loss.max_weight)
    method.class_weights = torch.tensor(w, dtype=torch.float32)
    from pipa_edge.log import stage  # noqa: PLC0415

    stage("train", f"source cross-entropy class weights ({cfg.loss.class_weights}): "
                   + ", ".join(f"{n} {v:.2f}" for n, v in zip(source.classes.names, w)))
    return w
