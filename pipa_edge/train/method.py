"""Training methods by name: ``source_only`` here, the adaptation methods from :mod:`pipa_edge.adapt`;
source cross-entropy class weights (``loss.class_weights``).

The plug-in interface the trainer calls (``training_step`` → one ``backward()`` → optimiser step →
``after_optimizer_step``) is :class:`pipa_edge.adapt.base.TrainMethod`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pipa_edge.adapt.base import TrainMethod
from pipa_edge.models.segmenter import Segmenter


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
