"""INT8 entropy calibrator for weakly typed TensorRT (8.6/10), fed from the calibration frames.

Device buffers via cuda-python. The calibration cache is a file keyed by the ONNX sha and the frame
data hash, so rebuilding with the same data skips calibration. Needs a GPU: not run on the dev
machines (see docs/deploy.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipa_edge.runtime.backends.base import ModelMeta


def make_calibrator(trt, meta: ModelMeta, frames: np.ndarray, cache_dir: Path, onnx_sha12: str):
    from pipa_edge.export.quantize import _preprocess
    from pipa_edge.runtime.backends.cuda_util import DeviceBuffer

    if frames is None or not len(frames):
        raise ValueError("the INT8 calibrator needs calibration frames")
    data_hash = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()[:12]
    cache_file = Path(cache_dir) / f"{onnx_sha12}-{data_hash}.trtcalib"

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.i = 0
            first = _preprocess(meta, frames[:1])
            self.buf = DeviceBuffer(first.nbytes)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.i >= len(frames):
                return None
            self.buf.upload(_preprocess(meta, frames[self.i:self.i + 1]))
            self.i += 1
            return [self.buf.ptr]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()
