"""The model's input size: the (H, W) a checkpoint was scored at, recorded in the checkpoint.

"The model's size" is the **whole-image evaluation size of its training recipe**: the ``resize`` of
the first ``val`` dataset (the size the recipe's mIoU is measured at, e.g. 180×240 for the CamVid
recipes, 512×1024 for GTA5→Cityscapes); without a val resize, the target's ``resize`` (the frames the
model adapts to and will run on), then the source's. Training crops (``transform.crop_size``) are
not it: the model is evaluated and deployed on whole frames.

Checkpoints written by ``pipa-edge train`` carry ``input_size: [H, W]`` and ``input_size_from``
(which config key it came from). Older checkpoints without it still load: the size is derived from
the ``config`` they store, else it is unknown (``None``) and callers fall back with a warning.
"""

from __future__ import annotations

from typing import Any

SIZE_KEY = "input_size"
FROM_KEY = "input_size_from"


def _get(obj: Any, key: str):
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _hw(v) -> tuple[int, int] | None:
    try:
        h, w = (int(x) for x in v)
    except (TypeError, ValueError):
        return None
    return (h, w) if h > 0 and w > 0 else None


def _first_val(config: Any):
    """The first val dataset of a config (``val`` may be one dataset, a list, or absent)."""
    val = _get(config, "val")
    if isinstance(val, (list, tuple)):
        return val[0] if val else None
    return val


def size_from_config(config: Any) -> tuple[tuple[int, int] | None, str]:
    """A train config (``TrainConfig`` or its ``model_dump``) → ``((H, W) | None, where it came from)``."""
    for name, ds in (("val.resize", _first_val(config)), ("target.resize", _get(config, "target")),
                     ("source.resize", _get(config, "source"))):
        hw = _hw(_get(ds, "resize"))
        if hw:
            return hw, name
    return None, "unknown"


def eval_data_arg(config: Any) -> str | None:
    """``TYPE:ROOT:SPLIT`` of a train config's first val set (else its source), for ``eval --data``
    hints; ``None`` when the config names no dataset."""
    for ds in (_first_val(config), _get(config, "source")):
        if _get(ds, "type") and _get(ds, "root"):
            return f"{_get(ds, 'type')}:{_get(ds, 'root')}:{_get(ds, 'split') or 'train'}"
    return None


def size_fields(config: Any) -> dict:
    """The fields a checkpoint writer adds: ``{"input_size": [H, W], "input_size_from": key}`` (empty if unknown)."""
    hw, where = size_from_config(config)
    return {SIZE_KEY: list(hw), FROM_KEY: where} if hw else {}


def recorded_input_size(ck: dict) -> tuple[tuple[int, int] | None, str]:
    """A loaded checkpoint dict → ``((H, W) | None, origin)``; origin names the key, ``config:…`` for
    sizes derived from the stored train config of older checkpoints, ``unknown`` when none."""
    hw = _hw(ck.get(SIZE_KEY))
    if hw:
        return hw, f"checkpoint {ck.get(FROM_KEY) or SIZE_KEY}"
    hw, where = size_from_config(ck.get("config"))
    if hw:
        return hw, f"checkpoint config {where}"
    return None, "unknown"


def checkpoint_input_size(path) -> tuple[tuple[int, int] | None, str]:
    """:func:`recorded_input_size` of the checkpoint file at ``path``."""
    from pipa_edge.models.io import read_checkpoint

    return recorded_input_size(read_checkpoint(path))
