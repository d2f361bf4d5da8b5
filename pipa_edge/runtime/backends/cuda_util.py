"""Minimal CUDA runtime helpers over ``cuda-python`` (``cuda.bindings``; ``cuda.cudart`` on 12.x).

Device buffers, a stream and async copies for the TensorRT backend and the INT8 calibrator. Every
CUDA error becomes an exception naming the call; "no driver / no device" becomes
:class:`~pipa_edge.errors.BackendUnavailable` with one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipa_edge.errors import BackendUnavailable


def cudart():
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt  # cuda-python 12.x
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed (pip install 'pipa-edge[tensorrt]')") from None
    return rt


def check(result, call: str):
    """``cuda.bindings`` calls return ``(err, *values)``: raise on error, return the values."""
    rt = cudart()
    err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if int(err) != int(rt.cudaError_t.cudaSuccess):
        name = getattr(err, "name", str(err))
        raise RuntimeError(f"CUDA {call} failed: {name}")
    return rest[0] if len(rest) == 1 else (rest or None)


@dataclass
class GpuInfo:
    index: int
    name: str
    sm: str  # "87" for compute capability 8.7
    memory_gb: float


def gpu_info(index: int = 0) -> GpuInfo:
    """The CUDA GPU ``index``; :class:`BackendUnavailable` (one line) when there is none."""
    rt = cudart()
    res = rt.cudaGetDeviceCount()
    err = res[0]
    if int(err) != int(rt.cudaError_t.cudaSuccess) or res[1] == 0:
        why = getattr(err, "name", str(err)) if int(err) != int(rt.cudaError_t.cudaSuccess) else "0 devices"
        raise BackendUnavailable(f"no CUDA GPU on this machine ({why}): TensorRT engines need an NVIDIA GPU "
                                 "and driver; use the ONNX export with --backend onnxruntime instead")
    if index >= res[1]:
        raise BackendUnavailable(f"CUDA device {index} does not exist ({res[1]} device(s) present)")
    prop = check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(index, name, f"{prop.major}{prop.minor}", round(prop.totalGlobalMem / 2 ** 30, 1))


class Stream:
    def __init__(self):
        self.rt = cudart()
        self.handle = check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def sync(self) -> None:
        check(self.rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(self.rt.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class DeviceBuffer:
    """``nbytes`` of device memory; ``upload``/``download`` NumPy arrays on a stream."""

    def __init__(self, nbytes: int):
        self.rt = cudart()
        self.nbytes = int(nbytes)
        self.ptr = int(check(self.rt.cudaMalloc(max(self.nbytes, 1)), "cudaMalloc"))

    def upload(self, host: np.ndarray, stream: Stream | None = None) -> None:
        host = np.ascontiguousarray(host)
        if host.nbytes > self.nbytes:
            raise ValueError(f"upload of {host.nbytes} bytes into a {self.nbytes}-byte buffer")
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        if stream is None:
            check(self.rt.cudaMemcpy(self.ptr, host.ctypes.data, host.nbytes, kind), "cudaMemcpy H2D")
        else:
            check(self.rt.cudaMemcpyAsync(self.ptr, host.ctypes.data, host.nbytes, kind, stream.handle),
                  "cudaMemcpyAsync H2D")

    def download(self, host: np.ndarray, stream: Stream | None = None) -> np.ndarray:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if stream is None:
            check(self.rt.cudaMemcpy(host.ctypes.data, self.ptr, host.nbytes, kind), "cudaMemcpy D2H")
        else:
            check(self.rt.cudaMemcpyAsync(host.ctypes.data, self.ptr, host.nbytes, kind, stream.handle),
                  "cudaMemcpyAsync D2H")
        return host

    def free(self) -> None:
        if self.ptr:
            check(self.rt.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0
