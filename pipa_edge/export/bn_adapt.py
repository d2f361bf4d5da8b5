"""``pipa-edge adapt-bn --engine``: rebuild the TensorRT engine from a BN-adapted ONNX model.

The adaptation itself runs on the device without torch (:func:`pipa_edge.runtime.bn_adapt.adapt_bn_onnx`);
this is the export's ONNX → engine route applied to its output.
"""

from __future__ import annotations

from pathlib import Path

from pipa_edge.errors import ConfigError, DataError


def build_engine_for(onnx_path: Path, precision: str = "fp16", calib: str | Path | None = None) -> Path:
    """Rebuild the TensorRT engine from the new ONNX with the device install's ONNX → engine route
    (:func:`pipa_edge.export.from_onnx.export_from_onnx`, the same as ``pipa-edge export NEW.onnx
    --format engine``); INT8 calibrates on ``calib``, the adaptation frames: a folder as is, a video or a
    ``run --collect`` folder through a temporary folder of its (evenly spaced) frames."""
    import tempfile

    try:
        from pipa_edge.export.from_onnx import export_from_onnx
    except ImportError as e:
        raise ConfigError(f"--engine: no ONNX → engine route in this install ({e})") from None
    from pipa_edge.export.config import ExportConfig

    cfg = {"format": "engine", "precision": precision, "bench_runs": 0}
    with tempfile.TemporaryDirectory(prefix="pipa-calib-") as tmp:
        if precision == "int8" and calib is not None:
            n = ExportConfig().int8.n
            cfg["int8"] = {"calib": str(calib_folder(calib, onnx_path, Path(tmp), n)), "n": n}
        return Path(export_from_onnx(onnx_path, ExportConfig.model_validate(cfg)).deployed)


def calib_folder(frames: str | Path, onnx_path: Path, tmp: Path, n: int) -> Path:
    """A folder ``export_from_onnx`` calibrates on, with the frames of ``frames`` (see :func:`build_engine_for`):
    a plain folder is returned; a video's or a collection's ``n`` frames are written to ``tmp`` (model size)."""
    import cv2

    from pipa_edge.data.bn_frames import open_frames
    from pipa_edge.runtime.backends.sidecar import read_sidecar

    fs = open_frames(frames, n)
    if fs.kind == "folder":
        return Path(frames)
    for i, img in enumerate(fs.frames(tuple(read_sidecar(onnx_path).input_size))):
        if not cv2.imwrite(str(tmp / f"{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise DataError(f"{tmp}: cannot write calibration frame {i}")
    return tmp
