"""Config of the adaptation methods (mean teacher, PiPa++). Extended by pipa_edge.adapt.

``method: mean_teacher`` uses the teacher / pseudo_label / mix (/ distill) sections; ``method: pipa``
adds every contrastive objective whose ``enabled`` is true (ablations switch them off).
All iteration counts are optimiser steps of the adaptation run (``it`` passed by the trainer).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from pipa_edge.adapt.temporal_config import TemporalContrastConfig
from pipa_edge.config import StrictModel


class TeacherConfig(StrictModel):
    alpha: float = Field(0.999, ge=0.0, lt=1.0)  # max EMA factor: min(1 - 1/(it+1), alpha)
    ema_buffers: bool = True  # EMA BN running stats too (else copy them from the student)


class PseudoLabelConfig(StrictModel):
    threshold: float = Field(0.968, gt=0.0, le=1.0)  # confidence of a "confident" pixel
    # per-class thresholds: min(threshold, quantile of that class's confidences in the batch)
    class_quantile: Optional[float] = Field(None, gt=0.0, lt=1.0)
    quality_weight: bool = True  # weight = fraction of confident pixels (per image); else hard mask
    ignore_top: int = Field(0, ge=0)  # rows at the top that get weight 0 (DAFormer psweight_ignore_top)
    ignore_bottom: int = Field(0, ge=0)  # rows at the bottom that get weight 0
    weight: float = Field(1.0, ge=0.0)  # weight of the mixed-image CE loss


class MixConfig(StrictModel):
    enabled: bool = True  # ClassMix/DACS: paste half the source classes onto the target
    color_jitter: float = Field(0.2, ge=0.0)  # strength s of brightness/contrast/saturation/hue jitter
    color_jitter_p: float = Field(0.8, ge=0.0, le=1.0)
    blur_p: float = Field(0.5, ge=0.0, le=1.0)  # Gaussian blur probability (sigma in [0.15, 1.15])
    # image-level style transfer of SOURCE images toward the target (uses target images only)
    source_style: Literal["none", "fda"] = "none"
    fda_beta: float = Field(0.01, gt=0.0, le=0.5)  # FDA low-frequency window (fraction of the size)
    fda_p: float = Field(0.5, ge=0.0, le=1.0)


class SamplerConfig(StrictModel):
    kind: Literal["random", "task_smart"] = "random"
    hard_anchor_ratio: float = Field(0.5, ge=0.0, le=1.0)  # fraction of anchors that are the hardest
    hard_negative_ratio: float = Field(0.5, ge=0.0, le=1.0)  # fraction of negatives that are the most similar
    score: Literal["loss", "confidence"] = "loss"  # hardness: student CE (or 1 - teacher conf for targets)


class PixelContrastConfig(StrictModel):
    enabled: bool = False
    weight: float = Field(0.1, ge=0.0)
    temperature: float = Field(0.1, gt=0.0)
    proj_dim: int = Field(64, ge=4)
    anchors_per_class: int = Field(64, ge=1)  # cap per class and step
    negatives_per_anchor: int = Field(256, ge=1)
    min_valid: float = Field(0.5, gt=0.0, le=1.0)  # labelled fraction a feature cell needs (majority vote)
    warmup_iters: int = Field(0, ge=0)  # objective off before this iteration, then ramped in linearly
    ramp_iters: int = Field(0, ge=0)


class PatchContrastConfig(StrictModel):
    enabled: bool = False
    weight: float = Field(0.1, ge=0.0)
    temperature: float = Field(0.1, gt=0.0)
    proj_dim: int = Field(64, ge=4)
    scale: tuple[float, float] = (0.5, 0.9)  # crop side as a fraction of the image side
    iou: tuple[float, float] = (0.3, 0.7)  # IoU range of the two crops
    view_size: float = Field(0.5, gt=0.0, le=1.0)  # crops are resampled to view_size × (H, W)
    num_images: int = Field(0, ge=0)  # target images per step used for views (0 = all)
    anchors: int = Field(128, ge=1)  # anchors per view pair and direction (cap)
    negatives_per_anchor: int = Field(256, ge=1)
    neg_min_dist: float = Field(1.5, ge=0.0)  # in-view negatives at least this many cells away
    memory_size: int = Field(0, ge=0)  # FIFO of past (detached) embeddings used as extra negatives
    warmup_iters: int = Field(0, ge=0)
    ramp_iters: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> "PatchContrastConfig":
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError("scale must be 0 < lo <= hi <= 1")
        lo, hi = self.iou
        if not 0.0 <= lo <= hi < 1.0:
            raise ValueError("iou must be 0 <= lo <= hi < 1")
        return self


class DistillConfig(StrictModel):
    enabled: bool = False
    teacher_checkpoint: Optional[str] = None  # a pipa-edge checkpoint of the larger adapted model
    weight: float = Field(1.0, ge=0.0)  # soft-logit KL weight
    pseudo_weight: float = Field(0.5, ge=0.0)  # hard pseudo-label CE weight
    temperature: float = Field(2.0, gt=0.0)
    threshold: float = Field(0.9, ge=0.0, le=1.0)  # confidence of the distillation pseudo-labels

    @model_validator(mode="after")
    def _ckpt(self) -> "DistillConfig":
        if self.enabled and not self.teacher_checkpoint:
            raise ValueError("distill.enabled needs distill.teacher_checkpoint")
        return self


class AdaptConfig(StrictModel):
    source_weight: float = Field(1.0, ge=0.0)  # supervised CE on source images
    # extra student forwards (patch views, temporal frame pairs) move the BatchNorm running statistics
    # (False: they normalise with their batch statistics, the running ones stay as the main forward set them);
    # a per-recipe choice, measured in docs/benchmarks.md and docs/benchmarks.md
    aux_bn_update: bool = True
    teacher: TeacherConfig = TeacherConfig()
    pseudo_label: PseudoLabelConfig = PseudoLabelConfig()
    mix: MixConfig = MixConfig()
    pixel_contrast: PixelContrastConfig = PixelContrastConfig()
    patch_contrast: PatchContrastConfig = PatchContrastConfig()
    temporal_contrast: TemporalContrastConfig = TemporalContrastConfig()  # video targets (image_prev)
    sampler: SamplerConfig = SamplerConfig()
    distill: DistillConfig = DistillConfig()
