"""Motion compensation for the temporal filter: warp the previous state onto the current frame.

The runtime's smoothing (:mod:`pipa_edge.runtime.temporal`) blends each frame's probabilities into
a per-pixel state. With a moving camera that state lags behind the scene; here it is first moved
with the motion between the two frames (DFF / Accel-style flow warping), so the EMA blends the
*same scene point* across frames::

    B        = provider.flow(prev_grey, cur_grey)         backward flow (h, w, 2), cur → prev
    ema'(x)  = ema(x + B(x))                              bilinear   (probabilities)
    L'(x)    = L(round(x + B(x)))                         nearest    (label, pending, count)
    valid(x) = x + B(x) inside the frame  and  |B(x) + Fw(x + B(x))|² < a (|B|² + |Fw|²) + b
               with Fw = provider.flow(cur_grey, prev_grey) (forward-backward check, Sundaram et al.)
    invalid pixels are reset: the filter takes the current frame's probabilities there
    (``ema' = 0`` marks "no state", ``L' = -1``).

Flow convention: ``B[y, x] = (dx, dy)`` means pixel ``(x, y)`` of the current frame is pixel
``(x + dx, y + dy)`` of the previous one (``cv2.remap`` / backward warping).

Providers (:class:`MotionProvider`): anything with ``name`` and ``flow(prev_grey, cur_grey) ->
(h, w, 2) float32`` backward flow on uint8 grey frames. Shipped and tested: :class:`DISMotion`
(OpenCV DIS, CPU). Register more with :func:`register_provider`. Jetson-side providers (VPI dense
optical flow, the NVIDIA Optical Flow SDK, decoder motion vectors of H.264/H.265 streams) fit the
same interface but are **not implemented or verified here** (no Jetson): a provider returning a
coarse block field must upsample it to ``(h, w)`` and give it in the backward convention above.

The flow runs on grey frames resized to the state's size (model resolution), or to
``min_height`` rows (default 64) when the state is smaller (DIS needs a few patches; finer flow
also tracks large motion better), then the field is resized to the state's grid.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np

MOTION_MODES = ("off", "on", "auto")


class MotionProvider(Protocol):
    """Dense motion between two grey uint8 frames of equal size."""

    name: str

    def flow(self, prev_grey: np.ndarray, cur_grey: np.ndarray) -> np.ndarray:
        """Backward flow ``(h, w, 2)`` float32: pixel (x, y) of ``cur`` is (x+dx, y+dy) of ``prev``."""
        ...


DIS_PRESETS = ("ultrafast", "fast", "medium")


class DISMotion:
    """OpenCV DIS optical flow (CPU, portable default). ``preset``: ultrafast / fast / medium.

    The default is ``medium``: at the sizes the runtime uses (48–180 rows) it measured both cheaper
    and more accurate than ``ultrafast`` here (``docs/runtime.md``)."""

    def __init__(self, preset: str = "medium"):
        import cv2

        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset '{preset}' (known: {', '.join(DIS_PRESETS)})")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self._dis = cv2.DISOpticalFlow_create(code)
        self.name = f"dis-{preset}"

    def flow(self, prev_grey: np.ndarray, cur_grey: np.ndarray) -> np.ndarray:
        # DIS calc(I0, I1) returns F with I0(x) ≈ I1(x + F(x)): I0 = current, I1 = previous
        return self._dis.calc(np.ascontiguousarray(cur_grey), np.ascontiguousarray(prev_grey), None)


_PROVIDERS: dict[str, Callable[[], MotionProvider]] = {
    "dis": lambda: DISMotion("medium"),  # the default: on 48–180-row frames cheaper and better than ultrafast
    "dis-ultrafast": lambda: DISMotion("ultrafast"),
    "dis-fast": lambda: DISMotion("fast"),
    "dis-medium": lambda: DISMotion("medium"),
}


def register_provider(name: str, factory: Callable[[], MotionProvider]) -> None:
    """Make ``factory`` available as ``make_provider(name)`` (e.g. a VPI provider on Jetson)."""
    _PROVIDERS[name] = factory


def make_provider(name: str = "dis") -> MotionProvider:
    if name not in _PROVIDERS:
        raise ValueError(f"unknown motion provider '{name}' (known: {', '.join(sorted(_PROVIDERS))})")
    return _PROVIDERS[name]()


# ------------------------------------------------------------------------------------ geometry


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def resize_flow(flow: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, 2)`` to ``(h, w)`` and rescale the vectors."""
    import cv2

    h0, w0 = flow.shape[:2]
    h, w = hw
    if (h0, w0) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA if h < h0 else cv2.INTER_LINEAR)
    out[..., 0] *= w / w0
    out[..., 1] *= h / h0
    return out


def fb_valid(bwd: np.ndarray, fwd: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """``(h, w)`` bool: ``bwd`` (cur → prev) lands inside the frame and agrees with ``fwd`` (prev → cur).

    With ``f = fwd`` sampled at ``x + bwd(x)``: consistent when ``|bwd + f|² < alpha (|bwd|² + |f|²) + beta``
    (occluded / disoccluded pixels and flow failures break the round trip).
    """
    import cv2

    h, w = bwd.shape[:2]
    xs, ys = grid(h, w)
    mx, my = xs + bwd[..., 0], ys + bwd[..., 1]
    f = cv2.remap(fwd.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    lhs = np.sum((bwd + f) ** 2, axis=-1)
    rhs = alpha * (np.sum(bwd ** 2, axis=-1) + np.sum(f ** 2, axis=-1)) + beta
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (lhs < rhs) & inside


def warp_planes(x: np.ndarray, flow: np.ndarray, nearest: bool = False, border: float = 0) -> np.ndarray:
    """Backward-warp ``x (C, h, w)`` (or ``(h, w)``) with ``flow (h, w, 2)``: ``out(x) = x(p + flow(p))``."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = grid(h, w)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    if x.ndim == 2:
        return cv2.remap(x, mx, my, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    src = np.ascontiguousarray(x.transpose(1, 2, 0))  # remap takes any channel count as (h, w, C)
    out = cv2.remap(src, mx, my, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return np.ascontiguousarray(out.reshape(h, w, -1).transpose(2, 0, 1))


def to_grey(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """RGB/grey uint8 ``(H, W[, 3])`` → grey uint8 resized (area) to ``hw``."""
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    g = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if g.shape[:2] != tuple(hw):
        g = cv2.resize(g, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return g


# ------------------------------------------------------------------------------- compensator


class MotionCompensator:
    """Moves a :class:`~pipa_edge.runtime.temporal.TemporalState` onto the current frame.

    ``align(state, image)`` is called before each filter step with the frame the model saw
    (RGB uint8 ``(H, W, 3)`` or a batch ``(B, H, W, 3)``); it returns the warped state (invalid
    pixels reset) and remembers the frame for the next call. ``last`` holds the timings and
    measurements of the latest call: ``flow_s``, ``warp_s``, ``motion_px`` (median |flow| in state
    pixels), ``valid`` (fraction of pixels kept).
    """

    def __init__(self, provider: str | MotionProvider = "dis", fb_check: bool = True, fb_alpha: float = 0.01,
                 fb_beta: float = 0.5, min_height: int = 64, static_mad: float | None = None):
        self.provider = make_provider(provider) if isinstance(provider, str) else provider
        self.fb_check, self.fb_alpha, self.fb_beta = bool(fb_check), float(fb_alpha), float(fb_beta)
        self.min_height = int(min_height)
        # adaptive ("auto"): skip flow + warp while the frame differs from the last aligned one by less
        # than this mean absolute grey difference (on a 24×32 thumbnail): a static view = plain EMA
        self.static_mad = static_mad
        self.prev: list[np.ndarray] | None = None
        self.last: dict[str, float] = {}
        self.frames = self.skipped = 0

    def reset(self) -> None:
        self.prev, self.last = None, {}

    def _static(self, prev: list[np.ndarray], cur: list[np.ndarray]) -> bool:
        import cv2

        if self.static_mad is None:
            return False
        for a, b in zip(prev, cur):
            ta, tb = (cv2.resize(x, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32) for x in (a, b))
            if float(np.abs(ta - tb).mean()) >= self.static_mad:
                return False
        return True

    def _flow_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        h, w = hw
        if h >= self.min_height:
            return h, w
        s = self.min_height / h
        return self.min_height, max(1, int(round(w * s)))

    def flow(self, prev: np.ndarray, cur: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Backward flow at the state's size ``hw`` and its valid mask (forward-backward + in frame)."""
        bwd = resize_flow(self.provider.flow(prev, cur).astype(np.float32, copy=False), hw)
        if self.fb_check:
            fwd = resize_flow(self.provider.flow(cur, prev).astype(np.float32, copy=False), hw)
            return bwd, fb_valid(bwd, fwd, self.fb_alpha, self.fb_beta)
        return bwd, fb_valid(bwd, -bwd, 0.0, float("inf"))  # in-frame check only

    def align(self, state, image: np.ndarray):
        """Warp ``state`` (or ``None`` on the first frame) to ``image``'s grid; returns the new state."""
        t0 = time.perf_counter()
        imgs = np.asarray(image)
        imgs = imgs[None] if imgs.ndim in (2, 3) and (imgs.ndim == 2 or imgs.shape[-1] in (1, 3)) else imgs
        if state is None:
            return state
        b, h, w = state.label.shape
        fhw = self._flow_hw((h, w))
        greys = [to_grey(imgs[min(i, len(imgs) - 1)], fhw) for i in range(b)]
        prev, self.prev = self.prev, greys
        if prev is None or len(prev) != b or prev[0].shape != greys[0].shape:
            self.last = {"flow_s": time.perf_counter() - t0, "warp_s": 0.0, "motion_px": 0.0, "valid": 1.0}
            return state
        self.frames += 1
        if self._static(prev, greys):  # keep the reference frame: slow drifts add up until they count
            self.prev, self.skipped = prev, self.skipped + 1
            self.last = {"flow_s": time.perf_counter() - t0, "warp_s": 0.0, "motion_px": 0.0, "valid": 1.0,
                         "skipped": 1.0}
            return state
        flow_s, warp_s = time.perf_counter() - t0, 0.0  # grey conversion counts as flow
        # new integer maps: the previous label map belongs to the caller now (drawn, compared)
        state = type(state)(state.ema, state.label.copy(), state.pending.copy(), state.count.copy())
        mags, valids = [], []
        for i in range(b):
            t1 = time.perf_counter()
            bwd, valid = self.flow(prev[i], greys[i], (h, w))
            t2 = time.perf_counter()
            _warp_item(state, i, bwd, valid)
            flow_s += t2 - t1
            warp_s += time.perf_counter() - t2
            mags.append(float(np.median(np.hypot(bwd[..., 0], bwd[..., 1]))))
            valids.append(float(valid.mean()))
        self.last = {"flow_s": flow_s, "warp_s": warp_s,
                     "motion_px": float(np.mean(mags)), "valid": float(np.mean(valids)),
                     "total_s": time.perf_counter() - t0}
        return state


def _warp_item(state, i: int, bwd: np.ndarray, valid: np.ndarray) -> None:
    """Warp batch item ``i`` of ``state``; reset pixels where ``valid`` is false.

    The EMA buffer is the filter's own (updated in place); the label map was returned to the caller
    by the previous step (it may still be drawn or compared), so the integer maps are replaced by
    new arrays (the caller must copy ``state.label`` etc. first: see :meth:`MotionCompensator.align`)."""
    inv = ~valid
    if state.ema is not None and state.ema.shape[0] > i and state.ema.shape[1] > 0:
        e = warp_planes(state.ema[i], bwd)
        e[:, inv] = 0.0  # "no state": the filter takes the current frame's probabilities there
        state.ema[i] = e
    for arr, border in ((state.label, -1), (state.pending, -1), (state.count, 0)):
        w = warp_planes(arr[i], bwd, nearest=True, border=border)
        w[inv] = border
        arr[i] = w


STATIC_MAD = 1.0  # "auto": grey levels (0–255) of mean absolute thumbnail difference below which a frame is static


def make_compensator(mode: str = "auto", provider: str = "dis") -> MotionCompensator | None:
    """``off`` → None; ``on`` → warp every frame; ``auto`` → warp unless the view is static (plain EMA then)."""
    from pipa_edge.errors import ConfigError

    if mode not in MOTION_MODES:
        raise ConfigError(f"motion: unknown mode '{mode}' (known: {', '.join(MOTION_MODES)})")
    if mode == "off":
        return None
    if provider not in _PROVIDERS:
        raise ConfigError(f"motion_provider: unknown provider '{provider}' (known: {', '.join(sorted(_PROVIDERS))})")
    return MotionCompensator(provider, static_mad=STATIC_MAD if mode == "auto" else None)
