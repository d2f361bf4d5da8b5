"""A model-free NumPy backend for tests, soak runs and pipeline-overhead benchmarks.

:class:`PaletteBackend` classifies each pixel by its distance to the class palette colours
(logits = ``-||rgb - colour_k||² / scale``) at ``input_size / stride``. It is not a segmenter worth
deploying; it is a deterministic, cheap stand-in with the real Backend contract (uint8 NHWC in,
logits NCHW out) so the runtime can be exercised without torch.
"""

from __future__ import annotations

import time

import numpy as np

from pipa_edge.data.classes import SYNTH11, ClassSet
from pipa_edge.runtime.backends.base import Backend, ModelMeta


class PaletteBackend(Backend):
    name = "palette"
    device = "cpu"

    def __init__(self, classes: ClassSet = SYNTH11, input_size: tuple[int, int] = (128, 256), stride: int = 4,
                 output: str = "logits", delay_s: float = 0.0, noise: float = 0.0, seed: int = 0):
        if output not in ("logits", "probs", "labels"):
            raise ValueError(f"output must be logits|probs|labels, got {output}")
        self.meta = ModelMeta(classes=classes, input_size=tuple(input_size), mean=(0.5, 0.5, 0.5),
                              std=(0.5, 0.5, 0.5), input_format="uint8_nhwc", output=output,
                              output_resolution="model")
        self.stride, self.delay_s, self.noise = int(stride), float(delay_s), float(noise)
        self._pal = np.asarray(classes.palette, np.float32)  # (K, 3)
        self._rng = np.random.default_rng(seed)
        self.calls = 0

    def infer(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8, got {frames.shape} {frames.dtype}")
        t0 = time.perf_counter()
        s = self.stride
        x = frames[:, ::s, ::s].astype(np.float32)  # (B,h,w,3)
        d = ((x[:, None] - self._pal[None, :, None, None]) ** 2).sum(-1)  # (B,K,h,w)
        logits = -d / 2000.0
        if self.noise:
            logits += self._rng.normal(0.0, self.noise, logits.shape).astype(np.float32)
        self.calls += 1
        if self.delay_s:  # emulate a slower accelerator
            rest = self.delay_s - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
        if self.meta.output == "labels":
            return logits.argmax(1).astype(np.uint8)
        if self.meta.output == "probs":
            from pipa_edge.runtime.temporal import softmax

            return softmax(logits)
        return logits.astype(np.float32)
