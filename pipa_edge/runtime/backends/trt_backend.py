"""Native TensorRT backend: deserialise an engine, cuda-python buffers and stream.

Order of checks at load (each failure is one line naming the file): engine file present → sidecar
present and readable → engine sha256 matches the sidecar → TensorRT importable → sidecar's
TensorRT version/flavour match the installed one → a CUDA GPU exists and its SM matches →
deserialisation succeeds → the engine's I/O matches the metadata. Uses the named-tensor API
(``set_tensor_address`` + ``execute_async_v3``), present in TensorRT 8.6, 10, 11 and TensorRT-RTX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipa_edge.errors import ModelFileError
from pipa_edge.runtime.backends.base import Backend
from pipa_edge.runtime.backends.sidecar import file_sha256, read_sidecar
from pipa_edge.runtime.backends.trt_common import check_engine_meta, import_trt

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32,
       "INT64": np.int64, "BOOL": np.bool_}


def np_dtype(trt_dtype) -> np.dtype:
    return np.dtype(_NP[str(trt_dtype).split(".")[-1]])


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | Path, *, device_index: int = 0, verify: bool = True, **_ignored):
        from pipa_edge.runtime.backends.cuda_util import DeviceBuffer, Stream, gpu_info

        p = Path(path)
        if not p.is_file():
            raise ModelFileError(f"{p}: engine file not found")
        meta = read_sidecar(p, required=True)
        flavour = meta.extra.get("tensorrt_flavour", "tensorrt")
        if verify:
            check_engine_meta(p, meta, meta.extra.get("tensorrt_version", ""), flavour, None, file_sha256(p))
        trt, flavour = import_trt(flavour)
        check_engine_meta(p, meta, trt.__version__, flavour, None, None)
        gpu = gpu_info(device_index)
        check_engine_meta(p, meta, trt.__version__, flavour, gpu.sm, None)
        self.meta, self.path, self.device = meta, p, f"cuda:{device_index} ({gpu.name})"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(p.read_bytes())
        if self.engine is None:
            raise ModelFileError(f"{p}: TensorRT could not deserialise the engine (corrupt, or built for "
                                 "another TensorRT/GPU)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise ModelFileError(f"{p}: expected 1 input and ≥1 output, engine has {inputs} → {outputs}")
        self._in, self._out = inputs[0], outputs[0]
        self._in_dtype = np_dtype(self.engine.get_tensor_dtype(self._in))
        self._out_dtype = np_dtype(self.engine.get_tensor_dtype(self._out))
        want_in = np.uint8 if meta.input_format == "uint8_nhwc" else np.float32
        if self._in_dtype != want_in:
            raise ModelFileError(f"{p}: engine input is {self._in_dtype} but the sidecar says {meta.input_format}")
        self._stream = Stream()
        self._buffers: dict[str, DeviceBuffer] = {}
        self._shape_key = None
        self._DeviceBuffer = DeviceBuffer

    def _bind(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self._shape_key == in_shape:
            return self._out_shape
        if -1 in tuple(self.engine.get_tensor_shape(self._in)):
            if not self.context.set_input_shape(self._in, in_shape):
                raise ValueError(f"{self.path.name}: input shape {in_shape} is outside the engine's profile")
        out_shape = tuple(self.context.get_tensor_shape(self._out))
        for buf in self._buffers.values():
            buf.free()
        nin = int(np.prod(in_shape)) * self._in_dtype.itemsize
        nout = int(np.prod(out_shape)) * self._out_dtype.itemsize
        self._buffers = {self._in: self._DeviceBuffer(nin), self._out: self._DeviceBuffer(nout)}
        for name, buf in self._buffers.items():
            self.context.set_tensor_address(name, buf.ptr)
        self._shape_key, self._out_shape = in_shape, out_shape
        return out_shape

    def infer(self, frames: np.ndarray) -> np.ndarray:
        x = self.preprocess(frames)
        static_b = tuple(self.engine.get_tensor_shape(self._in))[0]
        if static_b > 0 and x.shape[0] != static_b:
            return np.concatenate([self.infer(frames[i:i + static_b]) for i in range(0, len(frames), static_b)])
        out_shape = self._bind(tuple(x.shape))
        host_out = np.empty(out_shape, self._out_dtype)
        self._buffers[self._in].upload(x, self._stream)
        if not self.context.execute_async_v3(self._stream.ptr):
            raise RuntimeError(f"{self.path.name}: TensorRT execute_async_v3 failed")
        self._buffers[self._out].download(host_out, self._stream)
        self._stream.sync()
        return host_out.astype(np.float32) if host_out.dtype == np.float16 else host_out

    def close(self) -> None:
        for buf in getattr(self, "_buffers", {}).values():
            buf.free()
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            self._stream.close()
            self._stream = None
        self.context = self.engine = None
