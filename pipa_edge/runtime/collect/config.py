"""Typed configuration of the on-device pseudo-label collector (``--collect-config FILE``).

Every selection rule can be switched off: a threshold of ``0`` (or ``null`` for quotas/limits)
disables it. Loaded from YAML with :func:`load_collect_config` (unknown keys are errors that name
the key, like every pipa-edge config).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional, Sequence

from pydantic import Field, field_validator

from pipa_edge.config import StrictModel, load_config

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MULT = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(value) -> Optional[int]:
    """``1048576``, ``"500M"``, ``"2GiB"``, ``"64kb"`` → bytes (binary multiples); ``None`` stays."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"'{value}' is not a size (examples: 500000, 500M, 2G)")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])


class ThresholdConfig(StrictModel):
    """Per-class confidence thresholds: a pixel is kept when ``max prob >= thr[argmax]``.

    ``fixed``: ``value`` for every class, ``per_class`` overrides by class name.
    ``percentile``: class-balanced self-training (Zou et al., CBST): each class's threshold is the
    ``percentile``-th percentile of the confidences of pixels predicted as that class so far (a
    running 100-bin histogram), clipped to ``[min_value, max_value]``; until a class has
    ``min_pixels`` pixels, the fixed rule applies.
    """

    mode: Literal["fixed", "percentile"] = "fixed"
    value: float = Field(0.9, ge=0.0, le=1.0)
    per_class: dict[str, float] = Field(default_factory=dict)
    percentile: float = Field(50.0, ge=0.0, le=100.0)
    min_value: float = Field(0.5, ge=0.0, le=1.0)
    max_value: float = Field(0.95, ge=0.0, le=1.0)
    min_pixels: int = Field(1000, ge=0)
    decay: float = Field(0.999, gt=0.0, le=1.0)  # running-histogram decay per analysed frame

    @field_validator("per_class")
    @classmethod
    def _unit(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not 0.0 <= float(x) <= 1.0:
                raise ValueError(f"threshold for '{k}' must be in [0, 1]")
        return v


class StabilityConfig(StrictModel):
    """Label stability over the last ``frames`` analysed frames (at model resolution)."""

    frames: int = Field(3, ge=1)  # k; 1 disables the check
    max_flip_rate: float = Field(0.2, ge=0.0, le=1.0)  # mean fraction of pixels changing label frame to frame
    mask_unstable: bool = True  # pixels whose label changed within the window → 255


class DedupConfig(StrictModel):
    """Near-duplicate rejection: 64-bit DCT perceptual hash of a 32×32 grey downscale."""

    enabled: bool = True
    max_hamming: int = Field(6, ge=0, le=64)  # reject when a stored sample is this close


class StorageConfig(StrictModel):
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(92, ge=10, le=100)
    save_confidence: bool = False  # also store the max-probability map (uint8 PNG, conf × 255)
    image_max_side: Optional[int] = Field(None, ge=16)  # downscale saved frames (labels follow)
    max_bytes: Optional[int] = None  # quota on sample files; "500M" accepted
    max_samples: Optional[int] = Field(None, ge=1)
    eviction: Literal["oldest", "redundant"] = "redundant"

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, v):
        out = parse_size(v)
        if out is not None and out <= 0:
            raise ValueError("must be > 0")
        return out


class CollectConfig(StrictModel):
    """What is worth keeping, and how it is stored. See docs/deploy.md."""

    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    min_confident_fraction: float = Field(0.5, ge=0.0, le=1.0)  # kept (non-255) pixels / all pixels
    max_mean_entropy: float = Field(0.5, ge=0.0, le=1.0)  # entropy / log(K), mean over pixels; 1 disables
    min_blur_var: float = Field(30.0, ge=0.0)  # variance of the Laplacian (grey, ≤320 px wide); 0 disables
    min_interval_s: float = Field(1.0, ge=0.0)  # between saved samples, in stream time
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    class_presence: float = Field(0.01, ge=0.0, le=1.0)  # a class is "in" a sample above this pixel fraction
    quota_per_class: Optional[int] = Field(None, ge=1)  # samples per present class; rare classes keep room
    quota_overrides: dict[str, int] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    queue_size: int = Field(2, ge=1)  # offers waiting for the worker; more are dropped (counted)
    copy_frames: bool = True  # copy the frame in offer() (capture may reuse its buffers)
    copy_probs: bool = False  # backends return a fresh output array per call: no copy needed
    worker_nice: int = Field(10, ge=0, le=19)  # Linux: lower the worker thread's priority


def load_collect_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> CollectConfig:
    """YAML file (optional) + ``key.sub=value`` overrides → validated :class:`CollectConfig`."""
    return load_config(CollectConfig, path, overrides)
