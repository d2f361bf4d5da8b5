"""TensorRT bits shared by the engine builder and the runtime backend (pure Python, no GPU).

- which TensorRT is importable (``tensorrt`` 8.6/10/11, or ``tensorrt_rtx``) and its version;
- whether it is strongly typed (TensorRT ≥ 11 and TensorRT-RTX: precision comes from the ONNX);
- the engine file name ``<stem>.<onnx-sha12>.trt<ver>.sm<XY>.<prec>.<HxW>.engine``;
- the sidecar checks done before deserialising (file sha, TensorRT version, GPU SM).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pipa_edge.errors import BackendUnavailable, ModelFileError
from pipa_edge.runtime.backends.base import ModelMeta

FLAVOURS = ("tensorrt", "tensorrt_rtx")


def import_trt(flavour: str | None = None):
    """``(module, flavour)``; ``flavour=None`` tries full TensorRT first, then TensorRT-RTX."""
    names = [flavour] if flavour else list(FLAVOURS)
    for name in names:
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    what = flavour or "tensorrt"
    raise BackendUnavailable(f"TensorRT is not installed ({what} cannot be imported): engines need TensorRT "
                             "and an NVIDIA GPU; export ONNX instead (--format onnx)")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def strongly_typed(version: str, flavour: str = "tensorrt") -> bool:
    """TensorRT 11 and TensorRT-RTX accept only strongly typed networks (no FP16/INT8 flags)."""
    return flavour == "tensorrt_rtx" or version_tuple(version)[:1] >= (11,)


def engine_name(stem: str, onnx_sha256: str, trt_version: str, sm: str, precision: str,
                input_size: tuple[int, int], flavour: str = "tensorrt") -> str:
    ver = ".".join(str(v) for v in version_tuple(trt_version))
    tag = "trtrtx" if flavour == "tensorrt_rtx" else "trt"
    h, w = input_size
    return f"{stem}.{onnx_sha256[:12]}.{tag}{ver}.sm{sm}.{precision}.{h}x{w}.engine"


def check_engine_meta(path: str | Path, meta: ModelMeta, trt_version: str, flavour: str, sm: str | None,
                      file_sha256: str | None) -> None:
    """Refuse an engine whose sidecar says it was built for another file/TensorRT/GPU (one line)."""
    ex = meta.extra
    want_sha = ex.get("engine_sha256")
    if want_sha and file_sha256 and want_sha != file_sha256:
        raise ModelFileError(f"{path}: engine does not match its sidecar (sha256 differs: truncated or replaced)")
    built_flavour = ex.get("tensorrt_flavour", "tensorrt")
    if built_flavour != flavour:
        raise ModelFileError(f"{path}: engine was built with {built_flavour} but {flavour} is loaded; "
                             "rebuild it with `pipa-edge export --format engine`")
    built = ex.get("tensorrt_version")
    if not built:
        raise ModelFileError(f"{path}: sidecar has no tensorrt_version; rebuild the engine with pipa-edge export")
    if version_tuple(built) != version_tuple(trt_version):
        raise ModelFileError(f"{path}: engine was built with TensorRT {built} but this is TensorRT {trt_version}; "
                             "engines are not portable across versions: rebuild it on this machine "
                             "with `pipa-edge export --format engine`")
    built_sm = str(ex.get("sm", ""))
    if sm and built_sm and built_sm not in ("rtx", "any", sm):
        raise ModelFileError(f"{path}: engine was built for GPU sm{built_sm} ({ex.get('gpu', '?')}) but this GPU "
                             f"is sm{sm}; rebuild it on this device")
