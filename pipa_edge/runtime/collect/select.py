"""Which frames are worth keeping, and their pseudo-labels (pure NumPy, runs on the worker thread).

Per analysed frame (``probs``: ``(K, h, w)`` float32 class probabilities):

* ``labels = argmax_k probs``, ``conf = max_k probs``; ``entropy = -Σ p log p / log K`` (mean, in [0, 1]).
* Per-class threshold ``thr[c]``: fixed (``value`` / ``per_class``) or CBST percentiles of a
  running per-class confidence histogram. A pixel is *confident* when ``conf >= thr[labels]``.
* Stability over the last ``k`` frames: ``flip_rate`` = mean over consecutive pairs of the fraction
  of pixels whose label changed; pixels that changed anywhere in the window can be masked.
* Pseudo-label = ``labels`` where confident (and stable), else 255 (ignore).

Rejection rules, cheapest first: ``interval`` → ``unstable`` → ``confidence`` → ``entropy`` →
``blur`` (variance of the Laplacian) → ``duplicate`` (perceptual-hash Hamming distance to stored
samples) → ``empty``/``quota`` (per-class sample quotas: a frame passes when at least one class
it contains is still below its quota, so rare classes keep being collected).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipa_edge.data.classes import IGNORE_INDEX, ClassSet
from pipa_edge.errors import ConfigError
from pipa_edge.runtime.collect.config import CollectConfig

NBINS = 100
REASONS = ("interval", "unstable", "confidence", "entropy", "blur", "duplicate", "empty", "quota")


def to_grey(frame: np.ndarray, max_width: int = 320) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB → float32 luma, decimated by an integer stride to ≤ ``max_width``."""
    step = max(1, int(math.ceil(frame.shape[1] / max_width)))
    f = frame[::step, ::step].astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def laplacian_var(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (the usual blur measure: low = blurry/flat)."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]) - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.astype(np.float32)


_DCT32 = _dct_matrix(32)


def _block_mean(grey: np.ndarray, n: int) -> np.ndarray:
    """Mean over an ``n × n`` grid of (nearly) equal blocks."""
    h, w = grey.shape
    rows = np.linspace(0, h, n + 1).astype(int)[:-1]
    cols = np.linspace(0, w, n + 1).astype(int)[:-1]
    s = np.add.reduceat(np.add.reduceat(grey, rows, axis=0), cols, axis=1)
    cnt = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return s / np.maximum(cnt, 1)


def phash(grey: np.ndarray) -> int:
    """64-bit perceptual hash: 32×32 block means → 2-D DCT → 8×8 low frequencies > their median."""
    if grey.shape[0] < 32 or grey.shape[1] < 32:
        grey = np.kron(grey, np.ones((32, 32), np.float32))  # tiny inputs: upsample first
    small = _block_mean(grey, 32)
    d = _DCT32 @ small @ _DCT32.T
    low = d[:8, :8].ravel()
    bits = (low > np.median(low[1:])).astype(np.uint8)  # DC term excluded from the median
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming_min(h: int, stored: np.ndarray) -> int:
    """Smallest Hamming distance between ``h`` and an array of uint64 hashes (65 when empty)."""
    if stored.size == 0:
        return 65
    x = np.bitwise_xor(stored.astype(np.uint64), np.uint64(h))
    bits = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    return int(bits.min())


def mean_entropy(probs: np.ndarray) -> float:
    """``-Σ_k p log p / log K`` averaged over pixels, in [0, 1]."""
    k = probs.shape[0]
    if k < 2:
        return 0.0
    p = np.clip(probs, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(axis=0).mean() / math.log(k))


def _class_index(classes: ClassSet, name: str, key: str) -> int:
    try:
        return classes.index(name)
    except KeyError:
        raise ConfigError(f"collect config: key '{key}.{name}': the model's class set {classes.name} "
                          f"has no class '{name}'") from None


@dataclass
class Decision:
    accept: bool
    reason: str  # "ok" or one of REASONS
    label: np.ndarray | None = None  # (h, w) uint8, 255 = ignore
    conf: np.ndarray | None = None  # (h, w) float32 max probability
    info: dict = field(default_factory=dict)  # goes to the manifest entry


class Selector:
    """Stateful frame selection. ``decide`` is called for every analysed frame, in stream order."""

    def __init__(self, cfg: CollectConfig, classes: ClassSet):
        self.cfg = cfg
        self.classes = classes
        k = classes.num_classes
        self.hist = np.zeros((k, NBINS), np.float64)
        self.history: deque[np.ndarray] = deque(maxlen=max(1, cfg.stability.frames))
        self.last_accept_t = -math.inf
        fixed = np.full(k, cfg.thresholds.value, np.float32)
        for name, v in cfg.thresholds.per_class.items():
            fixed[_class_index(classes, name, "thresholds.per_class")] = v
        self.fixed = fixed
        quota = np.full(k, np.inf)
        if cfg.quota_per_class is not None:
            quota[:] = cfg.quota_per_class
        for name, q in cfg.quota_overrides.items():
            quota[_class_index(classes, name, "quota_overrides")] = q
        self.quota = quota

    # -- thresholds -----------------------------------------------------------------------
    def _update_hist(self, labels: np.ndarray, conf: np.ndarray) -> None:
        k = self.classes.num_classes
        bins = np.minimum((conf * NBINS).astype(np.int64), NBINS - 1)
        counts = np.bincount((labels.astype(np.int64) * NBINS + bins).ravel(), minlength=k * NBINS)
        self.hist *= self.cfg.thresholds.decay
        self.hist += counts[: k * NBINS].reshape(k, NBINS)

    def thresholds(self) -> np.ndarray:
        """Current per-class thresholds ``(K,) float32``."""
        t = self.cfg.thresholds
        if t.mode == "fixed":
            return self.fixed.copy()
        out = self.fixed.copy()
        tot = self.hist.sum(axis=1)
        cum = np.cumsum(self.hist, axis=1)
        for c in np.flatnonzero(tot >= max(t.min_pixels, 1)):
            idx = int(np.searchsorted(cum[c], t.percentile / 100.0 * tot[c]))
            out[c] = min(idx, NBINS - 1) / NBINS
        return np.clip(out, t.min_value, t.max_value).astype(np.float32)

    # -- decision -------------------------------------------------------------------------
    def decide(self, frame: np.ndarray, probs: np.ndarray, t: float,
               stored_hashes: np.ndarray | None = None, class_counts: np.ndarray | None = None) -> Decision:
        cfg = self.cfg
        k = self.classes.num_classes
        if probs.ndim != 3 or probs.shape[0] != k:
            raise ValueError(f"probs must be (K={k}, h, w), got {probs.shape}")
        labels = probs.argmax(axis=0).astype(np.uint8)
        conf = probs.max(axis=0).astype(np.float32, copy=False)
        if cfg.thresholds.mode == "percentile":
            self._update_hist(labels, conf)
        if self.history and self.history[-1].shape != labels.shape:
            self.history.clear()  # the model output size changed (another model/stream): start over
        if t < self.last_accept_t:
            self.last_accept_t = -math.inf  # the stream clock restarted
        nprev = max(0, cfg.stability.frames - 1)
        prev = list(self.history)[-nprev:] if nprev else []
        self.history.append(labels)
        flips = [float((a != b).mean()) for a, b in zip(prev + [labels], (prev + [labels])[1:])]
        flip_rate = float(np.mean(flips)) if flips else 0.0
        info = {"flip_rate": round(flip_rate, 4)}

        if t - self.last_accept_t < cfg.min_interval_s:
            return Decision(False, "interval", info=info)
        if cfg.stability.frames > 1 and (len(prev) < cfg.stability.frames - 1 or flip_rate > cfg.stability.max_flip_rate):
            return Decision(False, "unstable", info=info)
        thr = self.thresholds()
        keep = conf >= thr[labels]
        if cfg.stability.mask_unstable:
            for p in prev:
                keep &= p == labels
        frac = float(keep.mean())
        info.update(confident_fraction=round(frac, 4), thresholds=[round(float(x), 4) for x in thr])
        if frac < cfg.min_confident_fraction or frac == 0.0:
            return Decision(False, "confidence", info=info)
        ent = mean_entropy(probs)
        info["mean_entropy"] = round(ent, 4)
        if ent > cfg.max_mean_entropy:
            return Decision(False, "entropy", info=info)
        grey = to_grey(frame)
        blur = laplacian_var(grey)
        info["blur_var"] = round(blur, 2)
        if blur < cfg.min_blur_var:
            return Decision(False, "blur", info=info)
        h = phash(grey)
        info["phash"] = f"{h:016x}"
        if cfg.dedup.enabled and stored_hashes is not None:
            if hamming_min(h, stored_hashes) <= cfg.dedup.max_hamming:
                return Decision(False, "duplicate", info=info)
        label = np.where(keep, labels, np.uint8(IGNORE_INDEX)).astype(np.uint8)
        hist = np.bincount(labels[keep].ravel(), minlength=k)[:k]
        info["class_hist"] = [int(x) for x in hist]
        present = hist / label.size >= max(cfg.class_presence, 1e-12)
        if not present.any():
            return Decision(False, "empty", info=info)
        if class_counts is not None and np.all(class_counts[present] >= self.quota[present]):
            return Decision(False, "quota", info=info)
        self.last_accept_t = t
        return Decision(True, "ok", label=label, conf=conf, info=info)
