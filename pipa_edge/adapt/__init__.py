"""pipa_edge.adapt: mean-teacher self-training and the PiPa++ objectives.

``build_adapter(name, segmenter, adapt_cfg)`` is what :func:`pipa_edge.train.method.build_method`
calls for every method but ``source_only``:

* ``mean_teacher`` — EMA teacher, confidence-weighted pseudo-labels, ClassMix (+ optional FDA and
  distillation); the contrastive sections of the config are ignored.
* ``pipa`` — the same plus each contrastive objective whose ``enabled`` is true (pixel contrast,
  patch contrast; the sampler section picks random or task-smart sampling). Switching them off
  one by one gives the ablation rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from pipa_edge.adapt.config import AdaptConfig
from pipa_edge.errors import ConfigError

METHODS = ("mean_teacher", "pipa")


def _as_config(adapt_cfg: Union[AdaptConfig, Mapping[str, Any], None]) -> AdaptConfig:
    if adapt_cfg is None:
        return AdaptConfig()
    if isinstance(adapt_cfg, AdaptConfig):
        return adapt_cfg
    from pipa_edge.config import validate

    return validate(AdaptConfig, dict(adapt_cfg), where="adapt")


def build_adapter(name: str, segmenter, adapt_cfg: Optional[Union[AdaptConfig, Mapping[str, Any]]] = None):
    """Build the training method ``name`` (``mean_teacher`` | ``pipa``) around ``segmenter``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}' (known: source_only, {', '.join(METHODS)})")
    cfg = _as_config(adapt_cfg)
    if name == "mean_teacher":
        cfg = cfg.model_copy(update={"pixel_contrast": cfg.pixel_contrast.model_copy(update={"enabled": False}),
                                     "patch_contrast": cfg.patch_contrast.model_copy(update={"enabled": False}),
                                     "temporal_contrast": cfg.temporal_contrast.model_copy(update={"enabled": False})})
    elif not (cfg.pixel_contrast.enabled or cfg.patch_contrast.enabled or cfg.temporal_contrast.enabled):
        from pipa_edge.log import warn

        warn("adapt", "method 'pipa' with no contrastive objective enabled (adapt.pixel_contrast.enabled, "
                      "adapt.patch_contrast.enabled): this is the mean teacher")
    from pipa_edge.adapt.adapter import Adapter

    return Adapter(name, segmenter, cfg)


__all__ = ["AdaptConfig", "METHODS", "build_adapter"]
