"""Rare-class sampling (RCS, DAFormer) of source images.

Class frequencies come from the labels (pixel counts per image, cached as JSON)::

    f_c = sum_i n_ic / sum_i sum_k n_ik               class frequency over the dataset
    P(c) = exp((1 - f_c) / T) / sum_k exp((1 - f_k) / T)     T = temperature (small → rarer classes)
    draw c ~ P, then an image uniformly among those with n_ic >= min_pixels

:class:`RareClassSampler` is a ``torch.utils.data.Sampler`` over the dataset's indices (one epoch
= ``num_samples`` draws, reproducible from ``seed`` and ``set_epoch``), usable by any loader.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from pipa_edge.errors import DataError


def _label_of(dataset, i: int) -> np.ndarray:
    recs = getattr(dataset, "records", None)
    if recs is not None and hasattr(dataset, "read_label"):  # SegDataset: no image decode needed
        rec = recs[i]
        if rec.label is None:
            raise DataError(f"{rec.image}: rare-class sampling needs labels, this image has none")
        return np.asarray(dataset.read_label(rec))
    item = dataset[i]
    if "label" not in item:
        raise DataError(f"sample {i}: rare-class sampling needs labels")
    lab = item["label"]
    return lab.numpy() if hasattr(lab, "numpy") else np.asarray(lab)


def _fingerprint(dataset, num_classes: int) -> str:
    recs = getattr(dataset, "records", None)
    names = [str(getattr(r, "label", "")) for r in recs] if recs is not None else [str(len(dataset))]
    return hashlib.sha1(("|".join(names) + f"#{num_classes}").encode()).hexdigest()[:16]


def class_pixel_counts(dataset, num_classes: int, cache: Optional[str | Path] = None) -> np.ndarray:
    """``(N, K) int64`` pixel counts of each class in each labelled sample (cached at ``cache``)."""
    fp = _fingerprint(dataset, num_classes)
    if cache is not None and Path(cache).is_file():
        try:
            data = json.loads(Path(cache).read_text())
            if data.get("fingerprint") == fp:
                return np.asarray(data["counts"], np.int64).reshape(len(dataset), num_classes)
        except (ValueError, KeyError):
            pass  # stale or broken cache: recompute
    counts = np.zeros((len(dataset), num_classes), np.int64)
    for i in range(len(dataset)):
        lab = _label_of(dataset, i).reshape(-1).astype(np.int64)
        lab = lab[(lab >= 0) & (lab < num_classes)]
        counts[i] = np.bincount(lab, minlength=num_classes)[:num_classes]
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{cache}.{os.getpid()}.tmp")  # per process: DDP ranks may write at once
        tmp.write_text(json.dumps({"fingerprint": fp, "num_classes": num_classes, "counts": counts.tolist()}))
        tmp.replace(cache)
    return counts


def rcs_class_probs(counts: np.ndarray, temperature: float) -> np.ndarray:
    """``P(c)`` from ``(N, K)`` pixel counts; classes with no pixel get probability 0."""
    tot = counts.sum(axis=0).astype(np.float64)
    freq = tot / max(tot.sum(), 1.0)
    logits = (1.0 - freq) / float(temperature)
    logits[tot == 0] = -np.inf
    p = np.exp(logits - logits[np.isfinite(logits)].max())
    return p / p.sum()


class RareClassSampler(Sampler[int]):
    def __init__(self, dataset=None, num_classes: Optional[int] = None, temperature: float = 0.01,
                 min_pixels: int = 3000, num_samples: Optional[int] = None, seed: int = 0,
                 cache: Optional[str | Path] = None, counts: Optional[Sequence[Sequence[int]]] = None):
        if counts is None:
            if dataset is None or num_classes is None:
                raise ValueError("RareClassSampler needs a dataset and num_classes, or counts")
            counts = class_pixel_counts(dataset, num_classes, cache)
        self.counts = np.asarray(counts, np.int64)
        self.probs = rcs_class_probs(self.counts, temperature)
        self.min_pixels = int(min_pixels)
        self.by_class = []
        for c in range(self.counts.shape[1]):
            idx = np.nonzero(self.counts[:, c] >= self.min_pixels)[0]
            if idx.size == 0:
                idx = np.nonzero(self.counts[:, c] > 0)[0]
            self.by_class.append(idx)
        self.num_samples = int(num_samples) if num_samples is not None else len(self.counts)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        """One draw: ``(class, image index)``."""
        c = int(rng.choice(len(self.probs), p=self.probs))
        return c, int(rng.choice(self.by_class[c]))

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The ``num_samples`` image indices of ``epoch`` (what iterating yields after ``set_epoch``);
        the trainer's resumable source stream takes this as its order function."""
        rng = np.random.default_rng([self.seed, int(epoch), 0x5C5])
        return np.asarray([self.sample(rng)[1] for _ in range(self.num_samples)], np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self.num_samples
