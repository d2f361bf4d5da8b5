"""Saving and loading the plain segmenter (the deployable part of any checkpoint).

A pipa-edge checkpoint is a ``torch.save`` dict. Whatever else it holds (optimizer, teacher,
scheduler, RNG state — see ``pipa_edge.train.checkpoint``), it always has::

    {"format": "pipa-edge/1",
     "segmenter": {"meta": Segmenter.describe(), "state_dict": {...}}}

so export, eval and the runtime can rebuild the exact model with :func:`load_segmenter`, reading
the file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipa_edge.data.classes import ClassSet
from pipa_edge.errors import ModelFileError
from pipa_edge.fileio import atomic_write
from pipa_edge.models.segmenter import Segmenter

FORMAT = "pipa-edge/1"


def segmenter_entry(model: Segmenter) -> dict:
    return {"meta": model.describe(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_segmenter(path: str | Path, model: Segmenter, **extra) -> Path:
    """Write a checkpoint holding only the plain segmenter (plus ``extra`` JSON-like fields)."""
    return atomic_torch_save({"format": FORMAT, "segmenter": segmenter_entry(model), **extra}, path)


def read_checkpoint(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: checkpoint not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, wrong file type
        first = (str(e).splitlines() or [""])[0][:120]
        raise ModelFileError(f"{p}: not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(obj, dict) or "segmenter" not in obj:
        raise ModelFileError(f"{p}: not a pipa-edge checkpoint (no 'segmenter' entry)")
    return obj


def segmenter_from_entry(entry: dict, where: str = "checkpoint") -> Segmenter:
    from pipa_edge.models.zoo import build_segmenter

    try:
        meta = entry["meta"]
        classes = ClassSet.from_dict(meta["classes"])
        model = build_segmenter(meta["arch"], classes, mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{where}: segmenter metadata is incomplete ({e})") from None
    sd = entry.get("state_dict", {})
    own = model.state_dict()
    for k, v in own.items():
        if k not in sd:
            raise ModelFileError(f"{where}: missing tensor '{k}' for arch {meta['arch']}")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ModelFileError(f"{where}: shape mismatch at '{k}': file {tuple(sd[k].shape)} vs model {tuple(v.shape)}")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def load_segmenter(path: str | Path) -> Segmenter:
    """Rebuild the plain segmenter of any pipa-edge checkpoint (eval mode, CPU)."""
    return segmenter_from_entry(read_checkpoint(path)["segmenter"], where=str(path))
