"""TensorRT engine build with the TensorRT Python API, switching on the version.

- TensorRT 8.6 / 10 (weakly typed): FP16 via ``BuilderFlag.FP16`` with LayerNorm/Softmax layers
  pinned to FP32 (``OBEY_PRECISION_CONSTRAINTS``); INT8 via the QDQ graph (``int8_mode=qdq``) or
  an entropy calibrator on the calibration frames (``int8_mode=calibrator``).
- TensorRT 11 and TensorRT-RTX (strongly typed): no precision flags; the precision comes from the
  ONNX given (FP32 graph, FP16 graph from :mod:`pipa_edge.export.fp16`, or the INT8 QDQ graph).

The timing cache persists between builds. Engines are cached by name
(``<stem>.<onnx-sha12>.trt<ver>.sm<XY>.<prec>.<HxW>.engine``) and get a sidecar JSON; the plan
file itself is left untouched so ``trtexec`` and DeepStream load it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pipa_edge.errors import PipaError
from pipa_edge.runtime.backends.base import ModelMeta
from pipa_edge.runtime.backends.sidecar import file_sha256, read_sidecar, write_sidecar
from pipa_edge.runtime.backends.trt_common import engine_name, import_trt, strongly_typed


class TensorRTBuildError(PipaError):
    """The ONNX graph does not parse in TensorRT, or the build failed."""


def parse_onnx(trt, onnx_path: str | Path, strongly: bool):
    """``(builder, network, parser, logger)``; :class:`TensorRTBuildError` listing unsupported nodes."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # 8.6 needs it; deprecated no-op in 10
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise TensorRTBuildError(f"{onnx_path}: TensorRT's ONNX parser rejected the graph: "
                                 + "; ".join(parser_errors(parser)))
    return builder, network, parser, logger


def parser_errors(parser) -> list[str]:
    out = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node = getattr(e, "node_name", lambda: "")() or f"#{e.node()}"
        op = getattr(e, "node_operator", lambda: "")()
        desc = " ".join(str(e.desc()).split())[:300]
        out.append(f"node {node}{f' ({op})' if op else ''}: {desc}")
    return out or ["unknown parser error"]


def pin_fp32(trt, network, ops) -> int:
    """Weakly typed FP16 builds: keep LayerNorm/Softmax (and the listed ONNX ops) in FP32."""
    n = 0
    kinds = {getattr(trt.LayerType, k) for k in ("NORMALIZATION", "SOFTMAX") if hasattr(trt.LayerType, k)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in kinds or any(op in layer.name for op in ops):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            n += 1
    return n


def _timing_cache_path(cfg, version: str, sm: str) -> Path:
    if cfg.timing_cache:
        return Path(cfg.timing_cache)
    return Path.home() / ".cache" / "pipa-edge" / f"trt{version}.sm{sm}.timing.cache"


def build_engine(onnx_path: str | Path, meta: ModelMeta, cfg, precision: str, out_dir: str | Path, stem: str,
                 flavour: str | None = None, require_gpu: bool = True, calib_frames=None,
                 force: bool = False) -> tuple[Path, ModelMeta, bool]:
    """Build (or reuse) the engine for ``onnx_path``. ``cfg`` is a :class:`TensorRTConfig`.

    Returns ``(engine_path, meta, cache_hit)``. ``onnx_path`` must already carry the precision for
    strongly typed TensorRT (FP16 graph / INT8 QDQ graph); for weakly typed builds pass the FP32
    graph (or the QDQ graph with ``int8_mode=qdq``).
    """
    trt, flavour = import_trt(flavour)
    version = trt.__version__
    strongly = strongly_typed(version, flavour)
    if require_gpu:
        from pipa_edge.runtime.backends.cuda_util import gpu_info

        gpu = gpu_info()
        sm, gpu_name = gpu.sm, gpu.name
    else:
        sm, gpu_name = ("rtx" if flavour == "tensorrt_rtx" else "any"), "none (built without a GPU)"
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    onnx_sha = file_sha256(onnx_path)
    engine = out_dir / engine_name(stem, onnx_sha, version, sm, precision, meta.input_size, flavour)
    if engine.is_file() and not force:
        cached = read_sidecar(engine, required=False)
        if cached is not None and cached.extra.get("engine_sha256") == file_sha256(engine):
            return engine, cached, True

    t0 = time.perf_counter()
    builder, network, parser, logger = parse_onnx(trt, onnx_path, strongly)
    config = builder.create_builder_config()
    pinned = _configure(trt, config, network, cfg, meta, precision, strongly, calib_frames, out_dir / ".calib",
                        onnx_sha[:12])
    _dynamic_profile(builder, config, network.get_input(0), meta, cfg)
    cache_file = None if flavour == "tensorrt_rtx" else _timing_cache_path(cfg, version, sm)  # no-op in RTX
    if cache_file is not None:
        cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTBuildError(f"{onnx_path}: TensorRT {version} failed to build the {precision} engine "
                                 "(see the TensorRT log above)")
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_bytes(memoryview(config.get_timing_cache().serialize()))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = engine.with_name(f".{engine.name}.tmp")
    tmp.write_bytes(memoryview(plan))
    tmp.replace(engine)
    build_s = time.perf_counter() - t0
    emeta = dataclasses.replace(meta, precision=precision, extra=dict(meta.extra))
    emeta.extra.pop("file_sha256", None)
    emeta.extra.update(onnx_sha256=onnx_sha, onnx_file=onnx_path.name, engine_sha256=file_sha256(engine),
                       tensorrt_version=version, tensorrt_flavour=flavour, strongly_typed=strongly, gpu=gpu_name,
                       sm=sm, build_time_s=round(build_s, 2), built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       fp32_pinned_layers=pinned, int8_mode=cfg.int8_mode if precision == "int8" else None,
                       timing_cache=str(cache_file) if cache_file else None)
    write_sidecar(engine, emeta)
    return engine, emeta, False


def _configure(trt, config, network, cfg, meta: ModelMeta, precision: str, strongly: bool, calib_frames,
               calib_dir: Path, calib_key: str) -> int:
    """Workspace, optimisation level, precision flags (weakly typed TensorRT), DLA; returns the number
    of layers pinned to FP32."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gb * 2 ** 30))
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = cfg.builder_optimization_level
    pinned = 0
    if not strongly:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "fp16":
            pinned = pin_fp32(trt, network, cfg.fp32_ops)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if cfg.int8_mode == "calibrator":
                from pipa_edge.export.trt_calib import make_calibrator

                config.int8_calibrator = make_calibrator(trt, meta, calib_frames, calib_dir, calib_key)
    if cfg.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(cfg.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return pinned


def _dynamic_profile(builder, config, inp, meta: ModelMeta, cfg) -> None:
    """A dynamic input gets one optimisation profile: the model's H×W, batch 1 / opt_batch / max_batch."""
    if not any(d < 0 for d in inp.shape):
        return
    prof = builder.create_optimization_profile()
    shape = list(inp.shape)
    h, w = meta.input_size
    hw_axes = (1, 2) if meta.input_format == "uint8_nhwc" else (2, 3)
    for ax, v in zip(hw_axes, (h, w)):
        shape[ax] = v if shape[ax] < 0 else shape[ax]
    mk = [tuple([b] + shape[1:]) for b in (1, cfg.opt_batch, cfg.max_batch)]
    prof.set_shape(inp.name, *mk)
    config.add_optimization_profile(prof)
