"""Config of the temporal contrast objective (video PiPa++). Imported by :mod:`pipa_edge.adapt.config`.

Kept in its own module (no torch import) so configs load cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipa_edge.config import StrictModel


class TemporalContrastConfig(StrictModel):
    enabled: bool = False  # needs target batches with "image_prev" (a video target dataset with pairs)
    weight: float = Field(0.1, ge=0.0)
    temperature: float = Field(0.1, gt=0.0)
    proj_dim: int = Field(64, ge=4)
    anchors_per_class: int = Field(64, ge=1)  # anchors (cells of frame t) per class and step (cap)
    pool_per_class: int = Field(64, ge=1)  # candidate negatives from frame t-k per class (cap)
    negatives_per_anchor: int = Field(256, ge=1)
    min_valid: float = Field(0.5, gt=0.0, le=1.0)  # fraction of a feature cell that must be labelled / non-occluded
    label_consistent: bool = True  # anchor only where the pseudo-labels of t and warped t-k agree
    key_encoder: Literal["student", "teacher"] = "student"  # who embeds frame t-k (teacher: no gradient, cheaper)
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"  # on-the-fly DIS when the batch has no "flow"
    warmup_iters: int = Field(0, ge=0)
    ramp_iters: int = Field(0, ge=0)
