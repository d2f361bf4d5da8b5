"""Deterministic, sequence-aware k-fold splits of a dataset's frames (held-out protocols).

Frames of one driving sequence that are close in time look alike, so a random split would put
near-duplicates on both sides. Here each sequence (the frame name up to the first ``_``, e.g.
CamVid ``0001TP_006690`` → ``0001TP``; a name without ``_`` is its own sequence key ``""``) is cut
into ``k`` contiguous blocks in name order (``numpy.array_split`` sizes: the first blocks get the
extra frame); fold ``index`` holds out block ``index`` of every sequence and trains on the rest.
Only the frames on either side of a cut are neighbours across the two parts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from pipa_edge.errors import ConfigError

__all__ = ["sequence_of", "fold_indices", "apply_fold"]


def sequence_of(name: str) -> str:
    """The sequence key of a frame name (the part before the first ``_``)."""
    return name.split("_", 1)[0] if "_" in name else ""


def fold_indices(names: Sequence[str], k: int, index: int, part: str) -> list[int]:
    """Indices (ascending) of the frames of ``part`` (``train`` | ``heldout``) of fold ``index`` of ``k``."""
    if not 0 <= index < k:
        raise ValueError(f"fold index {index} not in 0..{k - 1}")
    if part not in ("train", "heldout"):
        raise ValueError(f"fold part {part!r} is not 'train' or 'heldout'")
    groups: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(names)), key=lambda j: names[j]):
        groups[sequence_of(names[i])].append(i)
    held: list[int] = []
    for idx in groups.values():
        held += [int(i) for i in np.array_split(np.asarray(idx, int), k)[index]]
    held_set = set(held)
    keep = held_set if part == "heldout" else set(range(len(names))) - held_set
    return sorted(keep)


def apply_fold(dataset, cfg):
    """Keep only the records of ``cfg.fold`` (a :class:`~pipa_edge.data.config.DatasetConfig`)."""
    f = cfg.fold
    recs = getattr(dataset, "records", None)
    if not isinstance(recs, list):
        raise ConfigError(f"dataset {cfg.root}: key 'fold': not supported for type '{cfg.type}' (no frame list)")
    idx = fold_indices([r.name for r in recs], f.k, f.index, f.part)
    if not idx:
        raise ConfigError(f"dataset {cfg.root}: key 'fold': part '{f.part}' of fold {f.index}/{f.k} is empty "
                          f"({len(recs)} frames)")
    dataset.records = [recs[i] for i in idx]
    return dataset
