"""Typed training config (``pipa-edge train CONFIG.yaml --set key=value``).

Every section is a :class:`~pipa_edge.config.StrictModel`: an unknown or invalid key is a
:class:`~pipa_edge.errors.ConfigError` whose one line names the file and the dotted key.

``batch_size`` is per process (per GPU under ``torchrun``); the effective batch is
``batch_size × world_size``. Iterations count optimiser steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence, Union

from pydantic import Field, field_validator, model_validator

from pipa_edge.adapt.config import AdaptConfig
from pipa_edge.config import StrictModel, load_config
from pipa_edge.data.config import DatasetConfig
from pipa_edge.data.transforms import TransformConfig


class ModelConfig(StrictModel):
    arch: str = "segformer-b0"
    weights: Optional[str] = None  # local weights file (e.g. ImageNet MiT-B0 encoder); never downloaded
    classes: str = "cityscapes19"  # class-set name (pipa_edge.data.classes)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        from pipa_edge.models.zoo import ARCHS

        if v not in ARCHS:
            raise ValueError(f"unknown arch '{v}' (known: {', '.join(ARCHS)})")
        return v

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: str) -> str:
        from pipa_edge.data.classes import CLASS_SETS

        if v not in CLASS_SETS:
            raise ValueError(f"unknown class set '{v}' (known: {', '.join(CLASS_SETS)})")
        return v


class OptimConfig(StrictModel):
    """AdamW + linear warm-up + poly decay (DAFormer/mmseg defaults)."""

    lr: float = Field(6e-5, gt=0.0)  # encoder lr; head lr = lr × head_lr_mult
    head_lr_mult: float = Field(1.0, gt=0.0)  # DAFormer: 10 for the decode head
    weight_decay: float = Field(0.01, ge=0.0)
    no_decay_norm_bias: bool = False  # True: no weight decay on biases and norm weights (1-D params)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    max_iters: int = Field(40000, ge=1)
    warmup_iters: int = Field(1500, ge=0)
    warmup_ratio: float = Field(1e-6, ge=0.0, le=1.0)  # lr factor at iteration 0
    power: float = Field(1.0, ge=0.0)  # poly: (1 - it / max_iters) ** power
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # poly floor as a fraction of the base lr
    grad_clip: Optional[float] = Field(None, gt=0.0)  # max global grad norm (None = off)


class EvalConfig(StrictModel):
    mode: Literal["whole", "slide"] = "whole"
    crop: Optional[tuple[int, int]] = None  # slide window (H, W); required for mode=slide
    stride: Optional[tuple[int, int]] = None  # slide stride (H, W); default = crop × 2/3
    batch_size: int = Field(1, ge=1)
    miou_convention: Literal["gt", "union", "all"] = "gt"  # see pipa_edge.metrics

    @model_validator(mode="after")
    def _slide_needs_crop(self) -> "EvalConfig":
        if self.mode == "slide" and self.crop is None:
            raise ValueError("mode 'slide' needs crop: [H, W]")
        return self


class SourceSamplingConfig(StrictModel):
    """How source images are drawn: ``uniform`` (a seeded permutation per epoch) or ``rare_class``
    (DAFormer's rare-class sampling, :mod:`pipa_edge.adapt.rcs`: a class c ~ P(c) ∝ exp((1 - f_c)/T),
    then an image holding at least ``min_pixels`` of c)."""

    kind: Literal["uniform", "rare_class"] = "uniform"
    temperature: float = Field(0.01, gt=0.0)
    min_pixels: int = Field(3000, ge=1)  # at the dataset's stored label resolution
    cache: Optional[str] = None  # class pixel counts JSON (default: <out_dir>/rcs_counts.json)


class PreciseBNConfig(StrictModel):
    """Re-estimate BN running statistics with the final weights on whole images of the evaluation size
    (:mod:`pipa_edge.train.precise_bn`), after the last iteration and before the final evaluation and
    ``final.pt``. ``images: target`` (unlabelled target images: AdaBN) needs a ``target`` dataset."""

    enabled: bool = False
    images: Literal["target", "source"] = "target"
    num_images: int = Field(200, ge=2)  # a seeded random subset when the dataset is larger
    batch_size: int = Field(8, ge=2)  # batches of one image are not used


class LossConfig(StrictModel):
    """The supervised cross-entropy on labelled source pixels (ignore index excluded).

    ``class_weights``: per-class weights from the source labels' pixel histogram (frequency ``f_c``
    over labelled pixels, counted once at the start, cached like rare-class counts):
    ``sqrt_inv_freq`` w_c ∝ f_c^-1/2, ``inv_freq`` w_c ∝ f_c^-1, scaled so that Σ f_c w_c = 1 and
    capped at ``max_weight``; classes absent from the source get weight 0. Used by ``source_only``
    and by the adaptation methods' source branch (never by pseudo-label losses)."""

    class_weights: Literal["none", "sqrt_inv_freq", "inv_freq"] = "none"
    max_weight: float = Field(10.0, gt=0.0)


class TrainConfig(StrictModel):
    model: ModelConfig = ModelConfig()
    source: DatasetConfig
    target: Optional[DatasetConfig] = None  # unlabelled target images (labels never read)
    source_sampling: SourceSamplingConfig = SourceSamplingConfig()
    val: Union[DatasetConfig, list[DatasetConfig], None] = None
    transform: TransformConfig = TransformConfig()
    target_transform: Optional[TransformConfig] = None  # default: same as transform
    method: str = "source_only"
    adapt: AdaptConfig = AdaptConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    precise_bn: PreciseBNConfig = PreciseBNConfig()
    loss: LossConfig = LossConfig()
    batch_size: int = Field(2, ge=1)  # per process
    num_workers: int = Field(0, ge=0)
    threads: Optional[int] = Field(None, ge=0)  # CPU intra-op threads (None/0: OMP_NUM_THREADS or usable CPUs)
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (always off on CPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_interval: int = Field(0, ge=0)  # iterations between val runs (0: only at the end)
    ckpt_interval: int = Field(1000, ge=1)  # iterations between last.pt writes
    log_interval: int = Field(10, ge=1)  # iterations between scalar rows
    out_dir: str = "runs/train"
    init_from: Optional[str] = None  # pipa-edge checkpoint whose segmenter weights start this run
    ddp_find_unused: bool = True  # DDP: allow parameters without a gradient in a step (e.g. heads off in warm-up)
    sync_bn: bool = True  # under DDP on CUDA: BatchNorm statistics over all GPUs (SyncBatchNorm)
    cudnn_benchmark: bool = False  # faster on GPU, but not bit-reproducible

    @field_validator("method")
    @classmethod
    def _method_name(cls, v: str) -> str:
        if not v or not v.replace("_", "").isalnum():
            raise ValueError(f"'{v}' is not a method name")
        return v

    @model_validator(mode="after")
    def _checks(self) -> "TrainConfig":
        if self.method != "source_only" and self.target is None:
            raise ValueError(f"method '{self.method}' needs a 'target' dataset")
        if self.precise_bn.enabled and self.precise_bn.images == "target" and self.target is None:
            raise ValueError("precise_bn.images: 'target' needs a 'target' dataset (or use 'source')")
        if self.precise_bn.enabled and self.precise_bn.num_images < self.precise_bn.batch_size:
            raise ValueError("precise_bn.num_images must be at least precise_bn.batch_size")
        return self

    @property
    def val_list(self) -> list[DatasetConfig]:
        if self.val is None:
            return []
        return list(self.val) if isinstance(self.val, list) else [self.val]

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir)


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """YAML + ``--set`` overrides → validated :class:`TrainConfig` (ConfigError names the key)."""
    return load_config(TrainConfig, path, overrides)
