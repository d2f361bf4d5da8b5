"""OpenVINO backend (optional, imported lazily): an IR ``.xml`` or an ``.onnx`` with its sidecar."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipa_edge.errors import BackendUnavailable, ModelFileError
from pipa_edge.runtime.backends.base import Backend
from pipa_edge.runtime.backends.sidecar import file_sha256, read_sidecar


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, path: str | Path, *, device: str = "CPU", threads: int | None = None, verify: bool = True,
                 **_ignored):
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailable("OpenVINO is not installed: pip install 'pipa-edge[openvino]'") from None
        p = Path(path)
        if not p.is_file():
            raise ModelFileError(f"{p}: model file not found")
        meta = read_sidecar(p, required=True)
        if verify:
            for key, f in (("xml_sha256", p), ("bin_sha256", p.with_suffix(".bin")), ("file_sha256", p)):
                want = meta.extra.get(key)
                if want and (not f.is_file() or file_sha256(f) != want):
                    raise ModelFileError(f"{f}: file does not match its sidecar (sha256 differs or file missing)")
        threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        cfg = {"INFERENCE_NUM_THREADS": int(threads)} if threads else {}
        device = device.upper() if device.lower() in ("cpu", "gpu", "npu", "auto") else device
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(p)), device, cfg)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with long texts
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise ModelFileError(f"{p}: OpenVINO cannot load the model ({type(e).__name__}: {first})") from None
        self.request = self.compiled.create_infer_request()
        self.meta, self.path, self.device = meta, p, device.lower()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        x = self.preprocess(frames)
        b = self.compiled.input(0).get_partial_shape()[0]
        if b.is_static and b.get_length() != x.shape[0]:
            n = b.get_length()
            return np.concatenate([self.infer(frames[i:i + n]) for i in range(0, len(frames), n)])
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()

    def close(self) -> None:
        self.request = self.compiled = None
