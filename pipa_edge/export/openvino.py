"""ONNX → OpenVINO IR (``.xml`` + ``.bin``) with the same sidecar (optional ``[openvino]`` extra)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipa_edge.errors import BackendUnavailable
from pipa_edge.runtime.backends.sidecar import file_sha256, read_sidecar, write_sidecar


def require_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable("OpenVINO is not installed: pip install 'pipa-edge[openvino]'") from None
    return ov


def export_openvino(onnx_path: str | Path, out_base: str | Path, fp16: bool = False) -> Path:
    """Convert ``onnx_path`` to ``<out_base>.xml`` (FP32 weights, FP16 with ``fp16``; INT8 QDQ graphs stay INT8)."""
    ov = require_openvino()
    onnx_path, xml = Path(onnx_path), Path(f"{out_base}.xml")
    # Core.read_model (the ONNX frontend) rather than ov.convert_model: the latter goes through the
    # model-conversion tool, which sends usage telemetry from a forked process by default — no
    # network calls from an export, and that fork crashed a process that had GStreamer loaded.
    model = ov.Core().read_model(str(onnx_path))
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
    meta = read_sidecar(onnx_path)
    meta = dataclasses.replace(meta, precision="fp16" if fp16 else meta.precision, extra=dict(meta.extra))
    meta.extra.pop("file_sha256", None)
    meta.extra.update(onnx_sha256=file_sha256(onnx_path), openvino_version=ov.get_version(),
                      xml_sha256=file_sha256(xml), bin_sha256=file_sha256(xml.with_suffix(".bin")))
    write_sidecar(xml, meta)
    return xml
