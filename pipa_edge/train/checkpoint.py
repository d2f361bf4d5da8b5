"""Training checkpoints: everything needed to resume bit-exactly, in the pipa-edge format.

Layout (``torch.save`` dict, loadable with ``weights_only=True``)::

    {"format": "pipa-edge/1",
     "segmenter": {"meta", "state_dict"},        # what load_segmenter / export / eval read
     "kind": "train",
     "method": {"name", "state_dict"},            # training-only state (teacher, heads); no segmenter.*
     "optimizer", "scheduler", "scaler",          # state dicts
     "rng": {"python", "numpy", "torch", "cuda"}, # global RNG states (rank 0)
     "rng_ranks": [rng, ...],                     # under DDP: one per rank
     "iteration": int,                            # optimiser steps done
     "data": {"source": [epoch, position], "target": [epoch, position] | None},
     "world_size": int, "config": dict, "metrics": dict,
     "input_size": [H, W], "input_size_from": str}   # the model's size (pipa_edge.models.input_size)

Written atomically (temp file + fsync + rename), so a crash never leaves a torn ``last.pt``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pipa_edge.errors import ModelFileError
from pipa_edge.models.input_size import size_fields
from pipa_edge.models.io import FORMAT, atomic_torch_save, read_checkpoint, segmenter_entry

SEG_PREFIX = "segmenter."


def capture_rng() -> dict:
    st = np.random.get_state()
    state = {
        "python": _py_state_to_plain(random.getstate()),
        "numpy": {"name": st[0], "keys": torch.from_numpy(st[1].astype(np.int64)), "pos": int(st[2]),
                  "has_gauss": int(st[3]), "cached_gaussian": float(st[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(_py_state_from_plain(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _py_state_to_plain(st):
    version, internal, gauss = st
    return [int(version), list(internal), gauss]


def _py_state_from_plain(st):
    version, internal, gauss = st
    return (int(version), tuple(int(v) for v in internal), gauss)


def method_state(method: torch.nn.Module) -> dict:
    """The method's state without the segmenter's tensors (stored once, under ``segmenter``)."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
            for k, v in method.state_dict().items() if not k.startswith(SEG_PREFIX)}


def save_train_state(path: str | Path, *, method, optimizer, scheduler, scaler, iteration: int, data: dict,
                     world_size: int, config: dict, metrics: dict | None = None,
                     rng_ranks: list | None = None) -> Path:
    obj = {
        "format": FORMAT,
        "segmenter": segmenter_entry(method.segmenter),
        "kind": "train",
        "method": {"name": getattr(method, "name", type(method).__name__), "state_dict": method_state(method)},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng(),
        "iteration": int(iteration),
        "data": data,
        "world_size": int(world_size),
        "config": config,
        "metrics": metrics or {},
        **size_fields(config),  # the model's size: whole-image eval size of the recipe
    }
    if rng_ranks is not None:  # DDP: every rank's RNG state, restored per rank on resume
        obj["rng_ranks"] = rng_ranks
    return atomic_torch_save(obj, path)


def load_train_state(path: str | Path) -> dict:
    ck = read_checkpoint(path)
    if ck.get("kind") != "train" or "optimizer" not in ck:
        raise ModelFileError(f"{path}: holds no training state (not written by pipa-edge train); cannot resume")
    return ck


def restore_method(method: torch.nn.Module, ck: dict, where: str) -> None:
    """Load segmenter + method state into ``method`` (strict: the same method and model)."""
    name = ck["method"].get("name")
    if name != getattr(method, "name", type(method).__name__):
        raise ModelFileError(f"{where}: checkpoint was trained with method '{name}', config says "
                             f"'{getattr(method, 'name', '?')}'")
    sd = {SEG_PREFIX + k: v for k, v in ck["segmenter"]["state_dict"].items()}
    sd.update(ck["method"]["state_dict"])
    own = method.state_dict()
    # non-tensor extra state (e.g. the patch-contrast memory) absent from older files starts empty
    missing = sorted(k for k in set(own) - set(sd) if not k.endswith("_extra_state"))
    if missing:
        raise ModelFileError(f"{where}: checkpoint lacks '{missing[0]}' (model or method changed since it was saved)")
    unexpected = sorted(set(sd) - set(own))
    if unexpected:
        raise ModelFileError(f"{where}: checkpoint has '{unexpected[0]}' that this model/method does not "
                             "(model or method changed since it was saved)")
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and isinstance(own[k], torch.Tensor) and tuple(own[k].shape) != tuple(v.shape):
            raise ModelFileError(f"{where}: shape mismatch at '{k}': file {tuple(v.shape)} vs model "
                                 f"{tuple(own[k].shape)}")
    method.load_state_dict(sd, strict=False)


def train_next_command(final_path: str | Path, config) -> str:
    """The ``next:`` hint printed after training: eval on the first val set (else the source) at the
    model's size (:mod:`pipa_edge.models.input_size`)."""
    from pipa_edge.models.input_size import eval_data_arg, size_from_config

    hw, _ = size_from_config(config)
    size = f" --imgsz {hw[0]} {hw[1]}" if hw else ""
    return f"pipa-edge eval {final_path} --data {eval_data_arg(config)}{size}"
