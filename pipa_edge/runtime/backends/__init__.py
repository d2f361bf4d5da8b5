"""Inference backends behind one protocol (:class:`Backend`): torch, onnxruntime, tensorrt, openvino.

``load_backend(path)`` picks the backend from the file suffix (``.pt/.pth/.ckpt`` → torch,
``.onnx`` → onnxruntime, ``.engine/.plan/.trt`` → tensorrt, ``.xml`` → openvino) unless
``backend=`` names one. Heavy modules are imported only when that backend is loaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipa_edge.errors import BackendUnavailable, ModelFileError
from pipa_edge.runtime.backends.base import Backend, ModelMeta
from pipa_edge.runtime.backends.sidecar import read_sidecar, sidecar_path, write_sidecar

BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino")
ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt", "pytorch": "torch", "ov": "openvino"}
SUFFIX_BACKEND = {".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".onnx": "onnxruntime",
                  ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt", ".xml": "openvino"}
# each entry: modules that must all import; a "a|b" entry is satisfied by either
_REQUIRES = {"torch": ("torch",), "onnxruntime": ("onnxruntime",), "tensorrt": ("tensorrt|tensorrt_rtx", "cuda"),
             "openvino": ("openvino",)}

__all__ = ["BACKENDS", "Backend", "ModelMeta", "available_backends", "backend_for", "load_backend", "read_sidecar",
           "sidecar_path", "write_sidecar"]


def _has(mod: str) -> bool:
    if "|" in mod:
        return any(_has(m) for m in mod.split("|"))
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Backends whose Python packages are installed (a GPU is checked only when one is loaded, so
    ``tensorrt`` may be listed on a machine without a GPU)."""
    return [b for b in BACKENDS if all(_has(m) for m in _REQUIRES[b])]


def backend_for(path: str | Path, backend: str | None = None) -> str:
    if backend:
        name = ALIASES.get(backend.lower(), backend.lower())
        if name not in BACKENDS:
            raise BackendUnavailable(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_BACKEND:
        raise ModelFileError(f"{path}: cannot tell the backend from suffix '{suffix or '(none)'}' "
                             f"(known: {', '.join(SUFFIX_BACKEND)}); pass --backend")
    return SUFFIX_BACKEND[suffix]


def load_backend(path: str | Path, backend: str | None = None, **opts) -> Backend:
    """Open ``path`` with the chosen backend. ``opts`` go to the backend (e.g. ``threads``,
    ``providers`` for onnxruntime, ``device``/``input_size``/``output`` for torch)."""
    name = backend_for(path, backend)
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: model file not found")
    missing = [m for m in _REQUIRES[name] if not _has(m)]
    if missing:
        extra = {"tensorrt": "tensorrt", "openvino": "openvino", "torch": "train"}.get(name)
        hint = f"; pip install 'pipa-edge[{extra}]'" if extra else ""
        need = ", ".join(m.replace("|", " or ") for m in missing)
        raise BackendUnavailable(f"{p}: backend '{name}' needs {need}, which is not installed{hint}")
    if name == "torch":
        from pipa_edge.runtime.backends.torch_backend import TorchBackend

        return TorchBackend(p, **opts)
    if name == "onnxruntime":
        from pipa_edge.runtime.backends.ort_backend import OrtBackend

        return OrtBackend(p, **opts)
    if name == "tensorrt":
        from pipa_edge.runtime.backends.trt_backend import TensorRTBackend

        return TensorRTBackend(p, **opts)
    from pipa_edge.runtime.backends.ov_backend import OpenVINOBackend

    return OpenVINOBackend(p, **opts)
