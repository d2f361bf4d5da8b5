"""``pipa-edge export MODEL.onnx --format engine|openvino``: the device-side build, torch-free.

The workstation's ``pipa-edge export CKPT.pt`` writes ``MODEL.onnx`` and its sidecar
``MODEL.onnx.json`` (classes, preprocessing, input size, output kind, the file's sha256). Engines
are tied to the GPU and the TensorRT version, so the engine is built *on the device* from those
two files:

1. the sidecar is read and its sha256 checked against the ``.onnx`` (a mismatch is refused in one
   line: the pair was not copied together); without a sidecar the copy embedded in the ONNX is used;
2. the precision variant the builder needs: FP32 as is; FP16 via the FP16 graph (strongly typed
   TensorRT 11 / TensorRT-RTX) or the builder flag (TensorRT 8.6/10); INT8 via the QDQ graph
   calibrated with onnxruntime on ``--calib DIR`` frames (a folder of frames or a
   ``pipa-edge run --collect`` folder), or TensorRT's entropy calibrator (``int8_mode=calibrator``);
3. the build (:func:`pipa_edge.export.tensorrt.build_engine`: engine named per ONNX sha, TensorRT
   version, GPU SM, precision and size; cached; its own sidecar) or the OpenVINO conversion;
4. parity of the result against onnxruntime on the FP32 ONNX, when the result can run here.

Imports nothing from torch (a device install has none); ``tests/test_device_imports.py`` checks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipa_edge import log
from pipa_edge.errors import ConfigError, ModelFileError
from pipa_edge.export.config import ExportConfig
from pipa_edge.export.frames import FrameSet, load_frames
from pipa_edge.runtime.backends.base import ModelMeta

STAGE = "export"


@dataclass
class OnnxExportResult:
    source: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # {"format", "file", "size_mb", "check"}
    parity: dict[str, dict] = field(default_factory=dict)
    export_s: float = 0.0
    report: Path | None = None

    @property
    def deployed(self) -> Path:
        for k in ("engine", "openvino"):
            if k in self.files:
                return self.files[k]
        return self.source


# ------------------------------------------------------------------------------------- inputs
def read_onnx_meta(path: str | Path) -> ModelMeta:
    """The ONNX's metadata from its sidecar (sha256 checked) or, failing that, the embedded copy."""
    from pipa_edge.runtime.backends.sidecar import ONNX_META_KEY, file_sha256, meta_from_json, read_sidecar, \
        sidecar_path

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: ONNX file not found")
    meta = read_sidecar(p, required=False)
    if meta is not None:
        want = meta.extra.get("file_sha256") or meta.extra.get("onnx_sha256")
        got = file_sha256(p)
        if want and want != got:
            raise ModelFileError(f"{p}: does not match its sidecar {sidecar_path(p).name} (sha256 {got[:12]} vs "
                                 f"{want[:12]} recorded): copy the .onnx and its .onnx.json together")
        return meta
    import onnx

    try:
        props = {q.key: q.value for q in onnx.load(str(p), load_external_data=False).metadata_props}
    except Exception as e:  # noqa: BLE001 - DecodeError etc. from a damaged file
        raise ModelFileError(f"{p}: not a readable ONNX file ({type(e).__name__})") from None
    if ONNX_META_KEY not in props:
        raise ModelFileError(f"{p}: no sidecar {sidecar_path(p).name} and no pipa-edge metadata inside: export it "
                             "with `pipa-edge export CKPT.pt` on the workstation")
    log.warn(STAGE, f"{p.name}: no sidecar beside it: using the metadata embedded in the ONNX (hash not checked)")
    return meta_from_json(props[ONNX_META_KEY], f"{p} (embedded metadata)")


def _derived(meta: ModelMeta, precision: str, source: Path, **extra) -> ModelMeta:
    m = dataclasses.replace(meta, precision=precision, extra=dict(meta.extra))
    for k in ("file_sha256", "onnx_sha256", "format"):
        m.extra.pop(k, None)
    m.extra.update(source_onnx=source.name, **extra)
    return m


def _size_mb(p: Path) -> float:
    total = p.stat().st_size
    if p.suffix == ".xml" and p.with_suffix(".bin").is_file():
        total += p.with_suffix(".bin").stat().st_size
    return round(total / 2 ** 20, 2)


# ------------------------------------------------------------------------------ precision graphs
def fp16_graph(src: Path, meta: ModelMeta, cfg: ExportConfig, out_dir: Path, stem: str) -> tuple[Path, ModelMeta]:
    """``<stem>.fp16.onnx`` (FP32 I/O, LayerNorm/Softmax kept FP32) + sidecar."""
    import onnx

    from pipa_edge.export.fp16 import to_fp16
    from pipa_edge.runtime.backends.sidecar import save_onnx

    path = out_dir / f"{stem}.fp16.onnx"
    m = save_onnx(to_fp16(onnx.load(str(src)), cfg.tensorrt.fp32_ops), path, _derived(meta, "fp16", src))
    log.ok(STAGE, f"FP16 graph → {path}")
    return path, m


def int8_graph(src: Path, meta: ModelMeta, cfg: ExportConfig, out_dir: Path, stem: str,
               frames: np.ndarray, source: str) -> tuple[Path, ModelMeta]:
    """``<stem>.int8.onnx``: static QDQ INT8 calibrated with onnxruntime on ``frames`` (cached)."""
    import hashlib

    import onnx

    from pipa_edge.export.quantize import quantize_qdq
    from pipa_edge.runtime.backends.sidecar import save_onnx

    sha12 = hashlib.sha256(frames.tobytes()).hexdigest()[:12]
    path = out_dir / f"{stem}.int8.onnx"
    q, hit = quantize_qdq(src, path, meta, frames, sha12, method=cfg.int8.method, per_channel=cfg.int8.per_channel,
                          cache_dir=cfg.int8.cache_dir or out_dir / ".calib")
    calib = {"source": source, "frames": len(frames), "data_sha12": sha12, "method": cfg.int8.method,
             "per_channel": cfg.int8.per_channel}
    m = save_onnx(onnx.load(str(q)), path, _derived(meta, "int8", src, calibration=calib))
    log.ok(STAGE, f"INT8 QDQ ({'cached calibration' if hit else 'calibrated'} on {source}) → {path}")
    return path, m


# -------------------------------------------------------------------------------------- builds
def _graph_row(res: OnnxExportResult, prec: str, graph: Path) -> None:
    res.files[f"onnx_{prec}"] = graph
    res.rows.append({"format": f"ONNX {prec.upper()}", "file": graph.name, "size_mb": _size_mb(graph),
                     "check": "-"})


def _gpu_or_none(flavour: str):
    """The GPU; ``None`` when there is none and TensorRT-RTX can still build ahead of time."""
    from pipa_edge.errors import BackendUnavailable
    from pipa_edge.runtime.backends.cuda_util import gpu_info

    try:
        return gpu_info()
    except BackendUnavailable:
        if flavour != "tensorrt_rtx":
            raise
        log.warn(STAGE, "no CUDA GPU here: TensorRT-RTX builds the engine ahead of time (a parse/build check; "
                        "the engine runs only on an RTX GPU)")
        return None


def build_engine_from_onnx(res: OnnxExportResult, src: Path, meta: ModelMeta, cfg: ExportConfig, out_dir: Path,
                           stem: str, calib: FrameSet | None) -> tuple[Path, bool]:
    """Returns ``(engine, ran_here)``; ``ran_here`` = a GPU is present, so the engine can be checked."""
    from pipa_edge.export.tensorrt import build_engine
    from pipa_edge.runtime.backends.trt_common import import_trt, strongly_typed

    trt, flavour = import_trt()
    gpu = _gpu_or_none(flavour)
    strongly = strongly_typed(trt.__version__, flavour)
    prec, graph, gmeta, calib_frames = cfg.precision, src, meta, None
    if meta.precision != "fp32":
        pass  # already an FP16 / QDQ INT8 graph: build it as it is
    elif prec == "fp16" and strongly:
        graph, gmeta = fp16_graph(src, meta, cfg, out_dir, stem)
    elif prec == "int8" and (strongly or cfg.tensorrt.int8_mode == "qdq"):
        graph, gmeta = int8_graph(src, meta, cfg, out_dir, stem, calib.frames, calib.source)
    elif prec == "int8":
        calib_frames = calib.frames  # weakly typed TensorRT's entropy calibrator (needs the GPU)
    if graph != src:
        _graph_row(res, prec, graph)
    engine, emeta, hit = build_engine(graph, gmeta, cfg.tensorrt, prec, out_dir, stem, flavour=flavour,
                                      require_gpu=gpu is not None, calib_frames=calib_frames)
    res.files["engine"] = engine
    how = "reused (cached)" if hit else f"built in {emeta.extra.get('build_time_s')}s"
    log.ok(STAGE, f"{flavour} {trt.__version__} {'(strongly typed) ' if strongly else ''}{prec} engine {how} "
                  f"for {emeta.extra.get('gpu')} → {engine}")
    return engine, gpu is not None


def build_openvino_from_onnx(res: OnnxExportResult, src: Path, meta: ModelMeta, cfg: ExportConfig, out_dir: Path,
                             stem: str, calib: FrameSet | None) -> Path:
    from pipa_edge.export.openvino import export_openvino, require_openvino

    require_openvino()
    graph = src
    if cfg.precision == "int8" and meta.precision != "int8":
        graph, _ = int8_graph(src, meta, cfg, out_dir, stem, calib.frames, calib.source)
        _graph_row(res, "int8", graph)
    xml = export_openvino(graph, out_dir / f"{stem}.{cfg.precision}.openvino", fp16=cfg.precision == "fp16")
    res.files["openvino"] = xml
    log.ok(STAGE, f"OpenVINO IR ({cfg.precision}) → {xml}")
    return xml


# ------------------------------------------------------------------------------------ entry point
def check_buildable(src: Path, meta: ModelMeta, cfg: ExportConfig) -> None:
    if cfg.format not in ("engine", "openvino"):
        raise ConfigError(f"{src}: already ONNX: pass --format engine (TensorRT) or --format openvino")
    if meta.extra.get("stateful"):
        raise ConfigError(f"{src}: a stateful graph (temporal filter inside) runs on onnxruntime only; build the "
                          "engine from the plain ONNX")
    if meta.precision not in ("fp32", cfg.precision):
        raise ConfigError(f"{src}: is an {meta.precision.upper()} graph; build {cfg.precision} from the FP32 .onnx "
                          f"(or pass --precision {meta.precision})")


def export_from_onnx(onnx_path: str | Path, cfg: ExportConfig | None = None) -> OnnxExportResult:
    """Build a TensorRT engine or OpenVINO IR from an exported ONNX + sidecar (no torch)."""
    cfg = cfg or ExportConfig(format="engine")
    t0 = time.perf_counter()
    src = Path(onnx_path)
    meta = read_onnx_meta(src)
    check_buildable(src, meta, cfg)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else src.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = cfg.name or src.stem
    h, w = meta.input_size
    log.stage(STAGE, f"{src.name}: {meta.extra.get('arch', '?')}, {meta.classes.num_classes} classes "
                     f"({meta.classes.name}), {h}x{w} {meta.input_format} → {meta.output} @ {meta.output_resolution}"
                     f" resolution (from the sidecar) → {cfg.format} {cfg.precision}")
    res = OnnxExportResult(src)
    res.rows.append({"format": f"ONNX {meta.precision.upper()}", "file": src.name, "size_mb": _size_mb(src),
                     "check": "source (sha256 ok)" if meta.extra.get("file_sha256") else "source"})
    calib = None
    if cfg.precision == "int8" and meta.precision != "int8":
        if not cfg.int8.calib:
            log.warn(STAGE, "INT8 without --calib: calibrating on synthetic frames; pass --calib DIR with frames "
                            "from the target camera (or a `pipa-edge run --collect` folder)")
        calib = load_frames(cfg.int8.calib, cfg.int8.n, (h, w), seed=1)
    if cfg.format == "engine":
        artefact, runnable = build_engine_from_onnx(res, src, meta, cfg, out_dir, stem, calib)
    else:
        artefact, runnable = build_openvino_from_onnx(res, src, meta, cfg, out_dir, stem, calib), True
    label = "TensorRT" if cfg.format == "engine" else "OpenVINO"
    check = "skipped (parity disabled)" if runnable else "not run (no GPU here)"
    if runnable and cfg.parity.enabled:
        check = _parity(res, src, artefact, cfg, calib, label)
    res.rows.append({"format": f"{label} {cfg.precision.upper()}", "file": artefact.name,
                     "size_mb": _size_mb(artefact), "check": check})
    res.export_s = time.perf_counter() - t0
    res.report = _write_report(res, cfg, out_dir, stem)
    print_rows(res)
    log.next_command(f"pipa-edge run camera0 --model {res.deployed}")
    return res


def _parity(res: OnnxExportResult, src: Path, artefact: Path, cfg: ExportConfig, calib, label: str) -> str:
    """The artefact against onnxruntime on the FP32 ONNX; gated for FP32/FP16 (as the checkpoint route)."""
    from pipa_edge.export.parity import compare, gate
    from pipa_edge.runtime.backends import load_backend
    from pipa_edge.runtime.backends.ort_backend import OrtBackend

    ref = OrtBackend(src)
    fs = calib if calib is not None and not cfg.parity.frames else \
        load_frames(cfg.parity.frames, cfg.parity.n, ref.meta.input_size)
    frames, source = fs.frames, fs.source
    test = load_backend(artefact)
    try:
        rep = compare(ref, test, frames[:cfg.parity.n], source, precision=cfg.precision,
                      min_agreement=cfg.parity.min_agreement if cfg.precision == "fp32" else None)
    finally:
        test.close()
        ref.close()
    res.parity[label] = rep.to_dict()
    (log.ok if rep.passed else log.warn)(STAGE, f"parity {label} vs onnxruntime FP32: {rep.line()}")
    if cfg.precision != "int8":
        gate(rep, str(artefact))
    return f"{100 * rep.agreement:.2f}% vs ORT"


def _write_report(res: OnnxExportResult, cfg: ExportConfig, out_dir: Path, stem: str) -> Path:
    from pipa_edge.runtime.backends.sidecar import write_json_atomic

    data = {"source": str(res.source), "format": cfg.format, "precision": cfg.precision,
            "tensorrt": cfg.tensorrt.model_dump(mode="json"), "int8": cfg.int8.model_dump(mode="json"),
            "files": {k: str(v) for k, v in res.files.items()}, "rows": res.rows, "parity": res.parity,
            "export_s": round(res.export_s, 2)}
    return write_json_atomic(out_dir / f"{stem}.{cfg.format}.export.json", data)


def print_rows(res: OnnxExportResult) -> None:
    from rich.table import Table

    if log.is_quiet():
        return
    t = Table(title=f"export from ONNX ({res.export_s:.1f}s)", title_justify="left")
    for col in ("Format", "File", "Size MB", "Check"):
        t.add_column(col, justify="right" if col == "Size MB" else "left", overflow="fold")
    for r in res.rows:
        t.add_row(r["format"], r["file"], f"{r['size_mb']:.1f}", r["check"])
    log.console.print(t)
