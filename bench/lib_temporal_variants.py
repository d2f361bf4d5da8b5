"""Filter rows of ``bench/temporal_motion.py``: the runtime's filter as shipped, and probes.

Named rows: ``raw`` (argmax), ``ema`` (plain EMA + hysteresis), ``mc-ema`` (motion-compensated, the
runtime's ``--motion on``), ``mc-ema-a0.4``. Probes (not shipped): ``ema:K=V,...`` /
``mc-ema:K=V,...`` with filter keywords ``alpha``, ``delta``, ``persist`` and compensator keywords
(``fb_beta``, ``fb_alpha``, ``min_height``); ``mc-ema-confT``: after the warp, pixels where the
current frame's max probability is at least T start from the current frame (no state).
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("raw", "ema", "mc-ema", "mc-ema-a0.4")  # the last: stronger EMA (alpha 0.4), affordable without lag
MIN_HEIGHT = 64  # --min-height: rows of the grey frames the filter's flow runs on (at least)


def make_filter(variant: str, provider: str = "dis-medium"):
    from pipa_edge.runtime.motion import MotionCompensator
    from pipa_edge.runtime.temporal import TemporalFilter

    def mc(**kw):
        return MotionCompensator(provider, **{"min_height": MIN_HEIGHT, **kw})

    if variant == "raw":
        return TemporalFilter(enabled=False)
    if variant == "ema":
        return TemporalFilter()
    if variant == "mc-ema":
        return TemporalFilter(motion=mc())
    if variant == "mc-ema-a0.4":
        return TemporalFilter(alpha=0.4, motion=mc())
    if variant.startswith(("mc-ema:", "ema:")):
        kv = dict(x.split("=") for x in variant.split(":", 1)[1].split(","))
        fkw = {k: float(kv.pop(k)) for k in ("alpha", "delta") if k in kv}
        if "persist" in kv:
            fkw["persist"] = int(kv.pop("persist"))
        if variant.startswith("ema:"):
            return TemporalFilter(**fkw)
        return TemporalFilter(**fkw, motion=mc(**{k: float(v) for k, v in kv.items()}))
    if variant.startswith("mc-ema-conf"):
        return ConfidenceGated(float(variant[len("mc-ema-conf"):]), mc())
    raise ValueError(f"unknown filter row '{variant}'")


class ConfidenceGated:
    """Probe: motion-compensated EMA whose state is dropped where the current frame is confident.
    Built on the public filter API (``filter_step``, ``MotionCompensator.align``)."""

    def __init__(self, tau: float, motion, alpha: float = 0.5, delta: float = 0.1, persist: int = 3):
        self.tau, self.motion, self.alpha, self.delta, self.persist = tau, motion, alpha, delta, persist
        self.state = None

    def update(self, output, kind: str = "logits", image=None):
        from pipa_edge.runtime.temporal import TemporalState, filter_step, softmax

        probs = softmax(output) if kind == "logits" else np.asarray(output, np.float32)
        if self.state is None:
            b, k, h, w = probs.shape
            self.state = TemporalState.empty(b, k, (h, w))
        st = self.motion.align(self.state, image)
        conf = probs.max(axis=1) >= self.tau
        st.ema[np.broadcast_to(conf[:, None], st.ema.shape)] = 0.0  # "no state": the current frame wins
        st = TemporalState(st.ema, np.where(conf, -1, st.label).astype(np.int32), st.pending, st.count)
        out, self.state = filter_step(probs, st, self.alpha, self.delta, self.persist)
        return out
