"""INT8: static QDQ quantisation (onnxruntime.quantization) and the mIoU accuracy gate.

Calibration uses target-domain frames (a folder, e.g. the collected pseudo-label set, or the
synthetic generator). The quantised file is cached under ``cache_dir`` by (FP32 ONNX sha, frame
data hash, method, per-channel), so re-exports with the same data reuse it.

The QDQ graph is what TensorRT 11 (strongly typed) needs for INT8, and what TensorRT 8.6/10 can
use instead of a calibrator; ONNX Runtime runs it on the CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pipa_edge.errors import PipaError
from pipa_edge.runtime.backends.base import Backend, ModelMeta


QUANT_OPS = ("Conv", "MatMul", "Gemm")


class AccuracyGateError(PipaError):
    """INT8 lost more mIoU than allowed."""


def _preprocess(meta: ModelMeta, frames: np.ndarray) -> np.ndarray:
    class _P(Backend):
        def infer(self, frames):  # pragma: no cover - only preprocess is used
            raise NotImplementedError

    p = _P()
    p.meta = meta
    return p.preprocess(frames)


def quantize_qdq(fp32_onnx: str | Path, out_path: str | Path, meta: ModelMeta, calib_frames: np.ndarray,
                 data_hash: str, method: str = "minmax", per_channel: bool = True,
                 cache_dir: str | Path | None = None, op_types: tuple[str, ...] = QUANT_OPS) -> tuple[Path, bool]:
    """Write the QDQ INT8 model to ``out_path``; returns ``(path, cache_hit)``.

    Symmetric INT8 activations/weights, FP32 biases: the form TensorRT's ONNX parser accepts.
    Only the compute-heavy ops (``op_types``: Conv/MatMul/Gemm) are quantised; LayerNorm, Softmax,
    Resize and the tail stay FP32 (SegFormer's attention and norms lose too much in INT8).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from pipa_edge.runtime.backends.sidecar import file_sha256

    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    cache_dir = Path(cache_dir) if cache_dir else out_path.parent / ".calib"
    key = (f"{file_sha256(fp32_onnx)[:12]}-{data_hash}-n{len(calib_frames)}-{method}-{'pc' if per_channel else 'pt'}"
           f"-{hashlib.sha256(','.join(op_types).encode()).hexdigest()[:6]}-v2")
    cached = cache_dir / f"{key}.int8.onnx"
    if cached.is_file():
        shutil.copyfile(cached, out_path)
        return out_path, True

    class Reader(CalibrationDataReader):
        def __init__(self):
            import onnx

            self.name = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0].name
            self.it = iter(range(len(calib_frames)))

        def get_next(self):
            i = next(self.it, None)
            return None if i is None else {self.name: _preprocess(meta, calib_frames[i:i + 1])}

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.tmp.onnx"
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # ORT's "consider pre-processing"
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
            quantize_static(str(fp32_onnx), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            op_types_to_quantize=list(op_types),
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=calib,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           # INT32 bias DequantizeLinear is rejected by TensorRT's parser
                                           "QuantizeBias": False})
    except Exception as e:  # noqa: BLE001 - surface as one line
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise PipaError(f"{fp32_onnx}: INT8 quantisation failed ({type(e).__name__}: {first})") from None
    finally:
        for aux in cache_dir.glob("*augmented*.onnx"):
            aux.unlink()
    tmp.replace(cached)
    shutil.copyfile(cached, out_path)
    return out_path, False


@dataclass
class AccuracyReport:
    frames: int
    source: str
    miou_before: float
    miou_after: float
    drop: float
    max_drop: float
    passed: bool

    def line(self) -> str:
        return (f"mIoU FP32 {100 * self.miou_before:.2f} → INT8 {100 * self.miou_after:.2f} "
                f"(drop {100 * self.drop:+.2f} points, allowed {100 * self.max_drop:.2f}) on {self.frames} "
                f"labelled frames from {self.source}")

    def to_dict(self) -> dict:
        return asdict(self)


def predict_labels(backend: Backend, frames: np.ndarray, label_hw: tuple[int, int]) -> np.ndarray:
    out = np.concatenate([backend.infer(frames[i:i + 1]) for i in range(len(frames))])
    lab = out if backend.meta.output == "labels" else out.argmax(1).astype(np.uint8)
    if lab.shape[-2:] != tuple(label_hw):
        lab = np.stack([cv2.resize(x, (label_hw[1], label_hw[0]), interpolation=cv2.INTER_NEAREST) for x in lab])
    return lab


def miou_of(backend: Backend, frames: np.ndarray, labels: np.ndarray) -> float:
    from pipa_edge.metrics import confusion_matrix, mean_iou

    classes = backend.meta.classes
    pred = predict_labels(backend, frames, labels.shape[-2:])
    cm = confusion_matrix(pred, labels, classes.num_classes, classes.ignore_index)
    return float(mean_iou(cm))


def accuracy_gate(fp32: Backend, int8: Backend, frames: np.ndarray, labels: np.ndarray, source: str,
                  max_drop: float) -> AccuracyReport:
    before, after = miou_of(fp32, frames, labels), miou_of(int8, frames, labels)
    drop = before - after
    return AccuracyReport(len(frames), source, before, after, drop, max_drop, bool(drop <= max_drop))
