"""Temporal consistency: EMA of class probabilities + confidence-gated hysteresis.

State in, frame probabilities in, labels + new state out — the same math in NumPy
(:class:`TemporalFilter`, used by the runtime) and in torch (:class:`TemporalFilterModule`, which
the exporter can put inside the graph so the smoothing runs on the accelerator: a stateful engine
with inputs ``frame + previous state`` and outputs ``labels + new state``).

Per pixel, with ``p_t`` the softmax probabilities ``(K,)`` of frame ``t``::

    e_t   = p_t                                  if the pixel has no state yet (sum(e_{t-1}) == 0)
          = alpha * p_t + (1 - alpha) * e_{t-1}  otherwise
    c     = argmax_k e_t[k]                      (candidate class)
    L     = previous label (-1: none yet)
    n     = frames the same candidate c != L has persisted (count), reset when c changes or wins
    new L = c   if L == -1  or  e_t[c] - e_t[L] >= delta  or  n >= k
          = L   otherwise

``alpha = 1`` disables the EMA, ``delta = 0`` disables the hysteresis (argmax of the EMA).
Label-only backends (``meta.output == "labels"``) have no probabilities: the filter then degrades
to persistence hysteresis on labels (a new label wins after ``k`` consecutive frames; ``delta`` and
``alpha`` do not apply).

State tensors (batch-first, model resolution): ``ema (B,K,h,w) float32``, ``label (B,h,w) int32``,
``pending (B,h,w) int32`` (the candidate being counted, -1 none), ``count (B,h,w) int32``.

Motion compensation (:mod:`pipa_edge.runtime.motion`, ``TemporalFilter(motion=...)``,
``pipa-edge run --motion``): before each step the state is warped onto the new frame with optical
flow; pixels failing the forward-backward check are reset (the current frame's probabilities win
there). The in-graph filter (:class:`TemporalFilterModule`, ``export --stateful``) has no motion
compensation: its state stays in place, so it suits static cameras (``docs/runtime.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Numerically stable softmax in float32 (in place on a float32 copy)."""
    x = np.asarray(logits, dtype=np.float32)
    x = x - x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


@dataclass
class TemporalState:
    ema: np.ndarray | None  # (B,K,h,w) float32; None for label-only filtering
    label: np.ndarray  # (B,h,w) int32, -1 = no label yet
    pending: np.ndarray  # (B,h,w) int32
    count: np.ndarray  # (B,h,w) int32

    @classmethod
    def empty(cls, batch: int, num_classes: int, hw: tuple[int, int], with_probs: bool = True) -> "TemporalState":
        h, w = hw
        return cls(np.zeros((batch, num_classes, h, w), np.float32) if with_probs else None,
                   np.full((batch, h, w), -1, np.int32), np.full((batch, h, w), -1, np.int32),
                   np.zeros((batch, h, w), np.int32))


def _argmax_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax (first maximum, as ``np.argmax``) and max over axis 1 of ``(B,K,h,w)``, plane by plane
    (faster than ``argmax(axis=1)``, which transposes)."""
    best = x[:, 0].copy()
    idx = np.zeros(best.shape, np.int32)
    gt = np.empty(best.shape, bool)
    for k in range(1, x.shape[1]):
        np.greater(x[:, k], best, out=gt)
        np.copyto(idx, k, where=gt)
        np.maximum(best, x[:, k], out=best)
    return idx, best


def filter_step(probs: np.ndarray | None, state: TemporalState, alpha: float, delta: float, persist: int,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, TemporalState]:
    """One step of the filter. ``probs (B,K,h,w)`` or, for label-only backends, ``labels (B,h,w)``.
    Returns ``(labels int32 (B,h,w), new state)``; the EMA buffer of ``state`` is updated in place."""
    hw = (probs.shape[0],) + probs.shape[2:] if probs is not None else np.shape(labels)
    if state.label.shape != hw:  # new stream size: start over
        state = TemporalState.empty(hw[0], 0, hw[1:], with_probs=False)
    if probs is not None:
        p = np.asarray(probs, np.float32)
        prev = state.ema
        if prev is None or prev.shape != p.shape:
            ema = p.copy()  # every pixel fresh
        else:
            fresh = prev.sum(axis=1) <= 0
            ema = prev  # updated in place: alpha*p + (1-alpha)*prev == (prev - p)*(1-alpha) + p
            ema -= p
            ema *= 1.0 - alpha
            ema += p
            if fresh.any():
                np.copyto(ema, p, where=fresh[:, None])
        cand, p_cand = _argmax_max(ema)
        b, k, h, w = ema.shape
        lab = np.maximum(state.label, 0).reshape(b, h * w)
        p_prev = ema.reshape(b, k, h * w)[np.arange(b)[:, None], lab, np.arange(h * w)[None]].reshape(b, h, w)
        wins = (p_cand - p_prev) >= delta
    else:
        ema = None
        cand = np.asarray(labels).astype(np.int32)
        wins = np.zeros(cand.shape, bool)
    prev_label, prev_pending, prev_count = state.label, state.pending, state.count
    differs = cand != prev_label
    count = np.where(differs, np.where(cand == prev_pending, prev_count + 1, 1), 0).astype(np.int32)
    switch = differs & ((prev_label < 0) | wins | (count >= persist))
    out = np.where(switch, cand, prev_label).astype(np.int32)
    count = np.where(switch, 0, count).astype(np.int32)
    pending = np.where(differs & ~switch, cand, -1).astype(np.int32)
    return out, TemporalState(ema, out, pending, count)


class TemporalFilter:
    """Stateful wrapper used by the runtime: ``labels = f.update(output, kind)``.

    ``kind`` is the backend's ``meta.output``: ``logits`` (softmax here), ``probs`` or ``labels``.
    ``enabled=False`` passes the argmax straight through (the "no smoothing" baseline).
    """

    def __init__(self, alpha: float = 0.5, delta: float = 0.1, persist: int = 3, enabled: bool = True,
                 motion=None):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        if delta < 0:
            raise ValueError(f"hysteresis delta must be >= 0, got {delta}")
        if persist < 1:
            raise ValueError(f"hysteresis persistence must be >= 1 frame, got {persist}")
        self.alpha, self.delta, self.persist, self.enabled = float(alpha), float(delta), int(persist), enabled
        self.motion = motion  # a runtime.motion.MotionCompensator: warps the state before each step
        self.motion_s = 0.0  # flow + warp time of the latest update (seconds)
        self.state: TemporalState | None = None

    def reset(self) -> None:
        self.state = None
        if self.motion is not None:
            self.motion.reset()

    def _align(self, image) -> None:
        self.motion_s = 0.0
        if self.motion is not None and image is not None:
            self.state = self.motion.align(self.state, image)
            self.motion_s = self.motion.last.get("flow_s", 0.0) + self.motion.last.get("warp_s", 0.0)

    def update(self, output: np.ndarray, kind: str = "logits", image: np.ndarray | None = None) -> np.ndarray:
        """Labels ``(B,h,w)`` of one frame. ``image``: the frame the model saw (RGB uint8, any size),
        used only by a motion compensator to move the state onto this frame first."""
        if kind == "labels":
            labels = np.asarray(output)
            if labels.ndim == 4 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if not self.enabled:
                return labels.astype(np.int32)
            if self.state is None:
                b, h, w = labels.shape
                self.state = TemporalState.empty(b, 0, (h, w), with_probs=False)
            self._align(image)
            out, self.state = filter_step(None, self.state, self.alpha, self.delta, self.persist, labels=labels)
            return out
        probs = softmax(output) if kind == "logits" else np.asarray(output, np.float32)
        if not self.enabled:
            return probs.argmax(axis=1).astype(np.int32)
        if self.state is None:
            b, k, h, w = probs.shape
            self.state = TemporalState.empty(b, k, (h, w))
        self._align(image)
        out, self.state = filter_step(probs, self.state, self.alpha, self.delta, self.persist)
        return out


def _torch_module():
    import torch
    from torch import nn

    class TemporalFilterModule(nn.Module):
        """The same step as :func:`filter_step`, in torch ops that export to ONNX (opset 17).
        No motion compensation (static cameras): the state is blended in place.

        ``forward(logits, ema, label, pending, count) -> (label, ema, pending, count)``; pass zeros
        for ``ema`` and -1 for ``label``/``pending`` on the first frame. ``from_logits=False``
        takes probabilities instead of logits.
        """

        def __init__(self, alpha: float = 0.5, delta: float = 0.1, persist: int = 3, from_logits: bool = True):
            super().__init__()
            self.alpha, self.delta, self.persist, self.from_logits = float(alpha), float(delta), int(persist), from_logits

        def forward(self, x, ema, label, pending, count):
            p = torch.softmax(x.float(), dim=1) if self.from_logits else x.float()
            fresh = ema.sum(dim=1, keepdim=True) <= 0
            ema_new = torch.where(fresh, p, self.alpha * p + (1.0 - self.alpha) * ema)
            cand = ema_new.argmax(dim=1).to(torch.int32)
            p_cand = torch.gather(ema_new, 1, cand.long().unsqueeze(1)).squeeze(1)
            p_prev = torch.gather(ema_new, 1, label.clamp(min=0).long().unsqueeze(1)).squeeze(1)
            wins = (p_cand - p_prev) >= self.delta
            differs = cand != label
            one = torch.ones_like(count)
            cnt = torch.where(differs, torch.where(cand == pending, count + 1, one), torch.zeros_like(count))
            switch = differs & ((label < 0) | wins | (cnt >= self.persist))
            out = torch.where(switch, cand, label)
            cnt = torch.where(switch, torch.zeros_like(cnt), cnt)
            pend = torch.where(differs & ~switch, cand, torch.full_like(cand, -1))
            return out, ema_new, pend, cnt

    class StatefulSegmenter(nn.Module):
        """Wraps a model (image → logits) with the filter: a stateful graph for export.

        ``forward(image, ema, label, pending, count) -> (label, ema, pending, count)``.
        """

        def __init__(self, model: nn.Module, alpha: float = 0.5, delta: float = 0.1, persist: int = 3):
            super().__init__()
            self.model = model
            self.filter = TemporalFilterModule(alpha, delta, persist, from_logits=True)

        def forward(self, image, ema, label, pending, count):
            return self.filter(self.model(image), ema, label, pending, count)

    return TemporalFilterModule, StatefulSegmenter


def __getattr__(name: str):  # lazy torch: the runtime's NumPy path must not import torch
    if name in ("TemporalFilterModule", "StatefulSegmenter"):
        mod, seg = _torch_module()
        globals().update(TemporalFilterModule=mod, StatefulSegmenter=seg)
        return globals()[name]
    raise AttributeError(name)


def flip_rate(prev: np.ndarray | None, cur: np.ndarray) -> float | None:
    """Fraction of pixels whose label changed since the previous frame (None on the first)."""
    if prev is None or prev.shape != cur.shape:
        return None
    return float(np.count_nonzero(prev != cur)) / float(cur.size)
