"""Config of the adaptation methods (mean teacher, PiPa++). Extended by pipa_edge.adapt."""

from __future__ import annotations

from pipa_edge.config import StrictModel


class AdaptConfig(StrictModel):
    ema_alpha: float = 0.999
    pseudo_threshold: float = 0.968
