"""Dense optical flow between video frames (NumPy/OpenCV side): flow files, warping, forward-backward
consistency and flow providers. The torch side (batched warping, resizing) is :mod:`pipa_edge.adapt.flow`.

Convention (the one DA-VSN/TPS use for their ``*_int16_x10.npy`` files): for a frame pair
``(t, t-k)`` the flow ``F`` is **t → t-k**, shape ``(H, W, 2)`` (NumPy) or ``(B, 2, H, W)`` (torch),
channel 0 = dx (columns), channel 1 = dy (rows)::

    pixel (x, y) of frame t  ↔  pixel (x + F[y, x, 0], y + F[y, x, 1]) of frame t-k

so ``warp(pred_{t-k}, F)`` (backward warping) brings the older frame onto frame t's grid.

Providers (:class:`FlowProvider`): ``provider(img_t, img_prev, key_t=None, key_prev=None)`` →
``(flow (H, W, 2) float32, valid (H, W) bool)``; ``valid`` is false where the correspondence
leaves the image or fails the forward-backward check (occlusions).

* :class:`DISFlow` — OpenCV DIS on the fly (default);
* :class:`CachedFlow` — wraps a provider, caches ``flow`` + ``valid`` on disk keyed by the two
  frame paths (``.npz``, written atomically);
* :class:`PrecomputedFlow` — reads ``*_int16_x10.npy`` files (FlowNet2/RAFT as in DA-VSN/TPS);
  ``valid`` is the in-frame mask only (a single direction allows no forward-backward check).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Protocol

import cv2
import numpy as np

from pipa_edge.errors import DataError

# ----------------------------------------------------------------------------- int16 x10 files


def read_int16_x10(path: str | Path) -> np.ndarray:
    """A DA-VSN/TPS flow file (``int16`` ``(H, W, 2)`` holding ``flow × 10``) → float32 flow."""
    p = Path(path)
    try:
        arr = np.load(p)
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: cannot read flow file ({e})") from None
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise DataError(f"{p}: flow must have shape (H, W, 2), got {arr.shape}")
    return arr.astype(np.float32) / 10.0


def write_int16_x10(path: str | Path, flow: np.ndarray) -> Path:
    """Write ``flow`` ``(H, W, 2)`` as DA-VSN does: ``np.int16(flow * 10)`` (0.1 px steps)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, np.int16(np.clip(flow * 10.0, -32768, 32767)))
    return p


# ----------------------------------------------------------------------------------- warping


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def in_frame(flow: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the target of each pixel lies inside the image."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    return (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)


def warp_np(arr: np.ndarray, flow: np.ndarray, nearest: bool = False, border_value: float = 0) -> np.ndarray:
    """Backward warp: ``out[y, x] = arr[y + F[y, x, 1], x + F[y, x, 0]]`` (``cv2.remap``).

    ``arr`` is ``(H, W)`` or ``(H, W, C)``; ``nearest`` for labels. Outside pixels get ``border_value``.
    """
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    src = arr if arr.dtype != np.int64 else arr.astype(np.int32)
    out = cv2.remap(src, xs + flow[..., 0], ys + flow[..., 1], interp, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=border_value)
    return out.astype(arr.dtype, copy=False)


def resize_flow(flow: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a ``(H, W, 2)`` flow field to ``(h, w)`` and rescale its vectors accordingly."""
    h0, w0 = flow.shape[:2]
    h, w = int(size_hw[0]), int(size_hw[1])
    if (h, w) == (h0, w0):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / w0
    out[..., 1] *= h / h0
    return out


# ------------------------------------------------------------------ forward-backward consistency


def fb_consistency(fwd: np.ndarray, bwd: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Valid mask ``(H, W)`` of the forward flow ``fwd`` (t → t-k) given ``bwd`` (t-k → t).

    Sundaram et al. / UnFlow: with ``b = bwd`` sampled at ``x + fwd(x)``, a pixel is consistent when
    ``|fwd + b|² < alpha (|fwd|² + |b|²) + beta``; it must also land inside the frame.
    """
    b = warp_np(bwd.astype(np.float32), fwd.astype(np.float32))
    lhs = np.sum((fwd + b) ** 2, axis=-1)
    rhs = alpha * (np.sum(fwd ** 2, axis=-1) + np.sum(b ** 2, axis=-1)) + beta
    return (lhs < rhs) & in_frame(fwd)


# ---------------------------------------------------------------------------------- providers


class FlowProvider(Protocol):
    name: str

    def __call__(self, img_t: np.ndarray, img_prev: np.ndarray, key_t: Optional[str] = None,
                 key_prev: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
        ...


def _grey(img: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(img)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class DISFlow:
    """OpenCV DIS optical flow both ways + forward-backward check. RGB or grey uint8 frames."""

    def __init__(self, preset: str = "medium", fb_check: bool = True, alpha: float = 0.01, beta: float = 0.5):
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset '{preset}' (known: {', '.join(DIS_PRESETS)})")
        self.preset, self.fb_check, self.alpha, self.beta = preset, bool(fb_check), float(alpha), float(beta)
        self.name = f"dis-{preset}{'' if fb_check else '-nofb'}"
        self._dis = None

    def _engine(self):
        if self._dis is None:  # created lazily: DIS objects do not pickle (DataLoader workers)
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])
        return self._dis

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_dis"] = None
        return d

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow ``a → b``: ``a[y, x] ≈ b[y + F[...,1], x + F[...,0]]`` (float32 ``(H, W, 2)``)."""
        return self._engine().calc(_grey(a), _grey(b), None).astype(np.float32)

    def __call__(self, img_t, img_prev, key_t=None, key_prev=None):
        fwd = self.flow(img_t, img_prev)
        if not self.fb_check:
            return fwd, in_frame(fwd)
        bwd = self.flow(img_prev, img_t)
        return fwd, fb_consistency(fwd, bwd, self.alpha, self.beta)


class CachedFlow:
    """Disk cache around a provider, keyed by ``(provider name, key_t, key_prev)`` (frame paths)."""

    def __init__(self, inner: FlowProvider, cache_dir: str | Path):
        self.inner, self.cache_dir = inner, Path(cache_dir)
        self.name = f"cached-{inner.name}"

    def path(self, key_t: str, key_prev: str) -> Path:
        h = hashlib.sha1(f"{self.inner.name}|{key_t}|{key_prev}".encode()).hexdigest()
        return self.cache_dir / h[:2] / f"{h}.npz"

    def __call__(self, img_t, img_prev, key_t=None, key_prev=None):
        if key_t is None or key_prev is None:
            return self.inner(img_t, img_prev)
        p = self.path(str(key_t), str(key_prev))
        if p.is_file():
            try:
                with np.load(p) as z:
                    flow, valid = z["flow"], z["valid"]
                if flow.shape[:2] == img_t.shape[:2]:
                    return flow.astype(np.float32), valid.astype(bool)
            except (OSError, ValueError, KeyError):
                pass  # corrupt entry: recompute and overwrite
        flow, valid = self.inner(img_t, img_prev)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, flow=flow.astype(np.float16), valid=valid)
        os.replace(tmp, p)
        return flow, valid


class PrecomputedFlow:
    """Reads ``root / pattern.format(name=<file stem of frame t>)`` (``*_int16_x10.npy``, t → t-k).

    ``key_t`` is frame t's path or name (the pairs wrapper passes the path). Flow files at another
    resolution than the frames are resized (vectors rescaled).
    """

    def __init__(self, root: str | Path, pattern: str = "{name}_int16_x10.npy"):
        self.root, self.pattern = Path(root), pattern
        self.name = f"precomputed-{self.root}"

    def __call__(self, img_t, img_prev, key_t=None, key_prev=None):
        if key_t is None:
            raise DataError(f"{self.root}: precomputed flow needs the frame name")
        p = self.root / self.pattern.format(name=Path(str(key_t)).stem)
        if not p.is_file():
            raise DataError(f"{p}: precomputed flow file missing for frame {key_t}")
        flow = resize_flow(read_int16_x10(p), img_t.shape[:2])
        return flow, in_frame(flow)


def build_flow_provider(kind: str = "dis", preset: str = "medium", cache_dir: Optional[str] = None,
                        root: Optional[str] = None, pattern: str = "{name}_int16_x10.npy") -> FlowProvider:
    """``kind``: ``dis`` (on the fly; cached when ``cache_dir``) or ``precomputed`` (``root``)."""
    if kind == "precomputed":
        if not root:
            raise DataError("flow kind 'precomputed' needs a flow folder (key 'flow_root')")
        return PrecomputedFlow(root, pattern)
    if kind != "dis":
        raise DataError(f"unknown flow kind '{kind}' (known: dis, precomputed)")
    p: FlowProvider = DISFlow(preset)
    return CachedFlow(p, cache_dir) if cache_dir else p
