"""One small protocol for every inference backend (torch, onnxruntime, tensorrt, openvino).

The runtime, the bench and the export parity gate all go through it. A backend is built from a
model file (the suffix chooses, or ``backend=``) and carries :class:`ModelMeta`, read from the
checkpoint itself or from the sidecar JSON next to an ONNX/engine file.

``infer`` takes RGB frames already resized to the model input size, ``(B, H, W, 3) uint8``, and
returns the model output as a NumPy array whose kind is ``meta.output``:
``logits``/``probs`` ``(B, K, h, w) float32`` or ``labels`` ``(B, h, w) uint8``. Normalisation is
done in the graph when ``meta.input_format == "uint8_nhwc"``, otherwise by the backend in NumPy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import numpy as np

from pipa_edge.data.classes import ClassSet


@dataclass
class ModelMeta:
    classes: ClassSet
    input_size: tuple[int, int]  # (H, W) the model expects
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_format: str = "float_nchw"  # or "uint8_nhwc" (preprocessing inside the graph)
    output: str = "logits"  # "logits" | "probs" | "labels"
    output_resolution: str = "model"  # "model" (feature stride) or "input" (upsampled in graph)
    precision: str = "fp32"
    extra: dict = field(default_factory=dict)  # onnx sha256, TensorRT version, GPU, build time, ...

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = self.classes.to_dict()
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        d = dict(d)
        d["classes"] = ClassSet.from_dict(d["classes"])
        d["input_size"] = tuple(int(v) for v in d["input_size"])
        d["mean"] = tuple(float(v) for v in d["mean"])
        d["std"] = tuple(float(v) for v in d["std"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class Backend(ABC):
    """Load once, ``infer`` many times. Subclasses set ``name``, ``device`` and ``meta``."""

    name: str = "base"
    device: str = "cpu"
    meta: ModelMeta

    @abstractmethod
    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3) uint8`` RGB at ``meta.input_size`` → output of kind ``meta.output``."""

    @property
    def precision(self) -> str:
        return self.meta.precision

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """NumPy normalisation for graphs that take ``float_nchw``; identity for ``uint8_nhwc``."""
        if self.meta.input_format == "uint8_nhwc":
            return np.ascontiguousarray(frames, dtype=np.uint8)
        x = frames.astype(np.float32) * (1.0 / 255.0)
        x -= np.asarray(self.meta.mean, np.float32)
        x /= np.asarray(self.meta.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def close(self) -> None:
        """Release device memory/sessions; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self) -> str:
        h, w = self.meta.input_size
        return f"{self.name} ({self.device}, {self.precision}, {h}x{w}, output={self.meta.output})"
