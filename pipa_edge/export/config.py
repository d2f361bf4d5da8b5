"""Export settings: a device profile (``export/<device>.yaml``) overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator

from pipa_edge.config import StrictModel, load_config

Format = Literal["onnx", "engine", "openvino"]
Precision = Literal["fp32", "fp16", "int8"]
FALLBACK_IMGSZ = (512, 1024)  # checkpoints that record no input size (older than the size record)
MIN_SIDE = 32  # one feature pixel at the deepest stride


class ParityConfig(StrictModel):
    frames: Optional[str] = None  # folder of real frames; None → synthetic generator
    n: int = Field(8, ge=1)
    min_agreement: Optional[float] = Field(None, gt=0, le=1)  # None → per precision (fp32 0.999)
    max_abs: Optional[float] = Field(None, gt=0)  # optional max |Δ| gate on logits/probs
    enabled: bool = True


class Int8Config(StrictModel):
    calib: Optional[str] = None  # target-domain frames (a folder, or the collected pseudo-label set)
    n: int = Field(32, ge=1)  # calibration frames
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    gate_data: Optional[str] = None  # labelled folder (images/ + labels/) for the mIoU gate; None → synthetic
    gate_n: int = Field(16, ge=1)
    max_miou_drop: float = Field(0.03, ge=0, le=1)  # absolute mIoU drop allowed (0.03 = 3 points)
    cache_dir: Optional[str] = None  # default: <out>/.calib


class TensorRTConfig(StrictModel):
    workspace_gb: float = Field(2.0, gt=0)
    timing_cache: Optional[str] = None  # default: ~/.cache/pipa-edge/trt-timing.cache
    fp32_ops: list[str] = ["LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt"]  # kept FP32 in FP16 builds
    int8_mode: Literal["qdq", "calibrator"] = "qdq"  # TensorRT 8.6/10; TensorRT 11 always uses the QDQ graph
    dla_core: Optional[int] = None
    opt_batch: int = Field(1, ge=1)
    max_batch: int = Field(1, ge=1)
    builder_optimization_level: int = Field(3, ge=0, le=5)


class DeepStreamConfig(StrictModel):
    enabled: bool = True
    network_mode: Optional[int] = None  # None → from precision (0 fp32, 1 int8, 2 fp16)


class TemporalExportConfig(StrictModel):
    """Stateful export: the temporal filter (EMA + hysteresis) inside the graph, state in/out."""
    enabled: bool = False
    alpha: float = Field(0.5, gt=0, le=1)  # EMA weight of the new frame
    delta: float = Field(0.1, ge=0)  # hysteresis margin
    persist: int = Field(3, ge=1)  # frames a new label must persist to win without the margin


class ExportConfig(StrictModel):
    device: str = "generic"  # profile name, for reports
    description: str = ""
    format: Format = "onnx"
    precision: Precision = "fp32"
    # (H, W); None → the checkpoint's recorded size (pipa_edge.models.input_size), 512×1024 if it has none.
    # Any size the network runs at natively (SegFormer, LR-ASPP: any H, W); no padding (docs/deploy.md)
    imgsz: Optional[tuple[int, int]] = None
    batch: int = Field(1, ge=1)
    dynamic: bool = False  # dynamic batch/H/W
    input_format: Literal["float_nchw", "uint8_nhwc"] = "float_nchw"
    # default: class probabilities at the network's output stride — what the runtime's temporal filter
    # consumes without a softmax or a full-resolution pass (docs/deploy.md "Default output")
    output: Literal["logits", "probs", "labels"] = "probs"
    output_resolution: Literal["model", "input"] = "model"
    opset: int = Field(17, ge=13, le=21)
    simplify: bool = True
    fold: bool = True  # exact inference rewrites before export (pipa_edge/export/fold.py), parity-gated
    bn_adapt: bool = True  # BN models: write the on-device re-estimation data (export/bn_companion.py)
    out_dir: Optional[str] = None  # default: next to the checkpoint
    name: Optional[str] = None  # file stem; default: checkpoint stem
    parity: ParityConfig = ParityConfig()
    int8: Int8Config = Int8Config()
    tensorrt: TensorRTConfig = TensorRTConfig()
    deepstream: DeepStreamConfig = DeepStreamConfig()
    temporal: TemporalExportConfig = TemporalExportConfig()  # also writes <name>.stateful.onnx
    bench_runs: int = Field(10, ge=0)  # ms/frame measurement for the results table (0 = skip)

    @field_validator("imgsz", mode="before")
    @classmethod
    def _imgsz(cls, v):
        if isinstance(v, int):
            return (v, v)
        return v

    @field_validator("imgsz")
    @classmethod
    def _imgsz_min(cls, v):
        if v is not None and any(s < MIN_SIDE for s in v):
            raise ValueError(f"imgsz {list(v)} must be at least {MIN_SIDE} pixels per side (H W)")
        return v


def load_export_config(profile: str | Path | None = None, overrides: dict | None = None,
                       sets: tuple[str, ...] = ()) -> ExportConfig:
    """Profile YAML (optional) → ``--set`` strings → explicit overrides (CLI flags win)."""
    cfg = load_config(ExportConfig, profile, sets)
    if overrides:
        data = cfg.model_dump()
        for key, val in overrides.items():
            if val is None:
                continue
            node = data
            parts = key.split(".")
            for p in parts[:-1]:
                node = node[p]
            node[parts[-1]] = val
        from pipa_edge.config import validate

        cfg = validate(ExportConfig, data, where=f"{profile or 'export config'} (with CLI flags)")
    return cfg
