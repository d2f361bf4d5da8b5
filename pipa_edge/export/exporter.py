"""``pipa-edge export``'s Python API: checkpoint → ONNX → gates → [INT8/FP16] → [engine/OpenVINO].

One function per format (:mod:`.onnx`, :mod:`.quantize`, :mod:`.tensorrt`, :mod:`.openvino`); this
module runs them in order, gates each artefact against PyTorch, writes the DeepStream config and
a JSON report, and prints an Ultralytics-style results table and the next command.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from pipa_edge import log
from pipa_edge.export.config import ExportConfig
from pipa_edge.export.parity import compare, gate
from pipa_edge.export.results import ExportResult, ExportRow, next_commands, print_table, write_report
from pipa_edge.fileio import write_errors_as_one_line

STAGE = "export"


def time_backend(backend, size: tuple[int, int], runs: int, warmup: int = 2) -> float | None:
    if runs <= 0:
        return None
    x = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    for _ in range(warmup):
        backend.infer(x)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        backend.infer(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def _size_mb(p: Path) -> float:
    total = p.stat().st_size
    if p.suffix == ".xml" and p.with_suffix(".bin").is_file():
        total += p.with_suffix(".bin").stat().st_size
    return total / 2 ** 20


def preflight(cfg: ExportConfig) -> None:
    """Fail in one line before any work when the target toolkit/device is missing."""
    if cfg.format == "engine":
        from pipa_edge.runtime.backends.cuda_util import gpu_info
        from pipa_edge.runtime.backends.trt_common import import_trt

        import_trt()
        gpu_info()
    elif cfg.format == "openvino":
        from pipa_edge.export.openvino import require_openvino

        require_openvino()


def open_checkpoint(ckpt: Path, cfg: ExportConfig):
    """Read the checkpoint once → ``(checkpoint dict, segmenter, cfg with imgsz resolved, sizes record)``."""
    from pipa_edge.models.input_size import recorded_input_size
    from pipa_edge.models.io import read_checkpoint, segmenter_from_entry

    ck = read_checkpoint(ckpt)
    seg = segmenter_from_entry(ck["segmenter"], where=str(ckpt))
    cfg, sizes = resolve_size(cfg, *recorded_input_size(ck), seg, str(ckpt))
    return ck, seg, cfg, sizes


def resolve_size(cfg: ExportConfig, model_size, origin: str, seg, where: str) -> tuple[ExportConfig, dict]:
    """The export size: ``cfg.imgsz`` if given, else the checkpoint's recorded size (else 512×1024 with a
    warning). Warns when a static export differs from the model's size; refuses a size the network
    cannot run at. Returns the config with ``imgsz`` set and the sidecar's ``sizes`` record."""
    from pipa_edge.errors import ConfigError
    from pipa_edge.export.config import FALLBACK_IMGSZ
    from pipa_edge.models.graph import output_size

    model_size = tuple(model_size) if model_size else None
    if cfg.imgsz is not None:
        size, chosen = tuple(cfg.imgsz), "imgsz (flag/profile)"
        if model_size and size != model_size and not cfg.dynamic:
            log.warn(STAGE, f"exporting at {size[0]}x{size[1]} but the model's size is {model_size[0]}x"
                            f"{model_size[1]} ({origin}): its scores were measured at the model's size; drop "
                            "--imgsz to export at it, and score the export with `pipa-edge eval MODEL.onnx`")
    elif model_size:
        size, chosen = model_size, origin
    else:
        size, chosen = FALLBACK_IMGSZ, "fallback (checkpoint records no input size)"
        log.warn(STAGE, f"{where}: the checkpoint records no input size (written before sizes were recorded); "
                        f"exporting at {size[0]}x{size[1]} — pass --imgsz H W (the size the model was scored at)")
    try:
        out_hw = output_size(seg, size, "model")
    except RuntimeError as e:  # e.g. DeepLabV3+ skip concat at a size not a multiple of 16
        first = (str(e).splitlines() or [""])[0][:100]
        raise ConfigError(f"{where}: {seg.arch} cannot run at {size[0]}x{size[1]} ({first}); pick --imgsz "
                          "H W multiples of 32") from None
    sizes = {"model_input_size": list(model_size) if model_size else None, "model_input_size_from": origin,
             "export_input_size": list(size), "chosen_from": chosen, "model_output_size": list(out_hw)}
    return cfg.model_copy(update={"imgsz": size}), sizes


@write_errors_as_one_line("the export's output folder", kept="files already written are complete (each is "
                          "written atomically)")
def export(ckpt: str | Path, cfg: ExportConfig | None = None) -> ExportResult:
    from pipa_edge.export.frames import load_frames
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    cfg = cfg or ExportConfig()
    t_start = time.perf_counter()
    ckpt = Path(ckpt)
    preflight(cfg)
    ck, seg, cfg, sizes = open_checkpoint(ckpt, cfg)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else ckpt.parent
    stem = cfg.name or ckpt.stem
    size = tuple(cfg.imgsz)
    res = ExportResult(out_dir)
    log.stage(STAGE, f"{ckpt.name}: {seg.arch}, {seg.num_classes} classes ({seg.classes.name}) → {cfg.format} "
                     f"{cfg.precision} {size[0]}x{size[1]}, input {cfg.input_format}, output {cfg.output} "
                     f"@ {cfg.output_resolution} resolution{', dynamic batch/H/W' if cfg.dynamic else ''}")
    torch_ref = TorchBackend(segmenter=seg, input_size=size, output=cfg.output,
                             output_resolution=cfg.output_resolution)
    res.rows.append(ExportRow("PyTorch", ckpt.name, _size_mb(ckpt), "reference",
                              time_backend(torch_ref, size, cfg.bench_runs)))

    onnx_path, proto, meta, xseg = _onnx_fp32(res, cfg, seg, ckpt, out_dir, stem, size, sizes)
    frames = None
    if cfg.parity.enabled:
        frames = load_frames(cfg.parity.frames, cfg.parity.n, size, classes=seg.classes)
    fp32 = OrtBackend(onnx_path)
    res.rows.append(_check(res, "ONNX", onnx_path, fp32, torch_ref, frames, "fp32", cfg))
    if cfg.bn_adapt:  # what `pipa-edge adapt-bn` needs on the device (BN models only; issue 25)
        from pipa_edge.export.bn_companion import write_bn_companion

        write_bn_companion(seg, cfg, onnx_path, size, frames)

    if cfg.temporal.enabled:  # 1b. the stateful graph: temporal filter inside (frame + state → labels + state)
        _stateful(res, cfg, seg, ckpt, frames, out_dir, stem, size, xseg, sizes)

    # 2. precision variants of the ONNX graph
    if cfg.precision == "int8":
        _int8(res, cfg, seg, meta, fp32, torch_ref, frames, out_dir, stem, size)
    elif cfg.precision == "fp16":
        _fp16(res, cfg, proto, meta, torch_ref, frames, out_dir, stem)

    # 3. target format
    if cfg.format == "engine":
        _engine(res, cfg, meta, torch_ref, frames, out_dir, stem)
    elif cfg.format == "openvino":
        _openvino(res, cfg, onnx_path, torch_ref, frames, out_dir, stem)

    # 4. DeepStream nvinfer config next to the deployable ONNX
    if cfg.deepstream.enabled:
        _deepstream(res, cfg)
    res.export_s = time.perf_counter() - t_start
    res.report = write_report(res, cfg, ckpt, out_dir, stem)
    print_table(res)
    next_commands(res, ck.get("config"))
    return res


def _onnx_fp32(res: ExportResult, cfg: ExportConfig, seg, ckpt: Path, out_dir: Path, stem: str, size, sizes):
    """1. ONNX FP32 (opset 17, TorchScript exporter) → onnxsim; returns ``(path, proto, meta, xseg)``,
    ``xseg`` being the exported module (exact graph rewrites applied; parity is checked against the
    unmodified model)."""
    from pipa_edge.export.fold import fold_for_export
    from pipa_edge.export.onnx import build_meta, export_onnx
    from pipa_edge.export.simplify import simplify
    from pipa_edge.runtime.backends.sidecar import save_onnx

    opts = dict(input_format=cfg.input_format, output=cfg.output, output_resolution=cfg.output_resolution)
    xseg, folds = fold_for_export(seg) if cfg.fold else (seg, [])
    if folds:
        log.stage(STAGE, f"exact graph rewrites: {', '.join(folds)} (export.fold; parity is checked against the "
                        "unmodified model)")
    onnx_path = out_dir / f"{stem}.onnx"
    t = time.perf_counter()
    proto = export_onnx(xseg, onnx_path, size, dynamic=cfg.dynamic, batch=cfg.batch, opset=cfg.opset, **opts)
    if cfg.simplify:
        shape = [cfg.batch, *size, 3] if cfg.input_format == "uint8_nhwc" else [cfg.batch, 3, *size]
        proto = simplify(proto, where=str(onnx_path), test_shape=shape if cfg.dynamic else None)
    meta = build_meta(seg, size, cfg.input_format, cfg.output, cfg.output_resolution, dynamic=cfg.dynamic,
                      source_checkpoint=ckpt.name, folds=folds, sizes=sizes)
    meta = save_onnx(proto, onnx_path, meta)
    res.files["onnx"] = onnx_path
    log.ok(STAGE, f"ONNX opset {meta.extra['opset']}{' (onnxsim)' if cfg.simplify else ''} → {onnx_path} "
                  f"({_size_mb(onnx_path):.1f} MB, {time.perf_counter() - t:.1f}s)")
    return onnx_path, proto, meta, xseg


def _fp16(res: ExportResult, cfg: ExportConfig, proto, meta, torch_ref, frames, out_dir: Path, stem: str) -> None:
    from pipa_edge.export.fp16 import to_fp16
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import save_onnx

    p16 = out_dir / f"{stem}.fp16.onnx"
    m16 = dataclasses.replace(meta, precision="fp16", extra=dict(meta.extra))
    save_onnx(to_fp16(proto, cfg.tensorrt.fp32_ops), p16, m16)
    res.files["onnx_fp16"] = p16
    res.rows.append(_check(res, "ONNX FP16", p16, OrtBackend(p16), torch_ref, frames, "fp16", cfg))


def _openvino(res: ExportResult, cfg: ExportConfig, onnx_path: Path, torch_ref, frames, out_dir: Path,
              stem: str) -> None:
    from pipa_edge.export.openvino import export_openvino
    from pipa_edge.runtime.backends.ov_backend import OpenVINOBackend

    src = res.files.get("onnx_int8", onnx_path)
    xml = export_openvino(src, out_dir / f"{stem}{'.int8' if 'onnx_int8' in res.files else ''}.openvino")
    res.files["openvino"] = xml
    res.rows.append(_check(res, "OpenVINO", xml, OpenVINOBackend(xml), torch_ref, frames,
                           "int8" if "onnx_int8" in res.files else "fp32", cfg))


def _check(res: ExportResult, label: str, path: Path, backend, torch_ref, frames, precision: str,
           cfg: ExportConfig, gated: bool = True) -> ExportRow:
    par = "skipped"
    if frames is not None:
        rep = compare(torch_ref, backend, frames.frames, frames.source, precision=precision,
                      min_agreement=cfg.parity.min_agreement if precision == "fp32" else None,
                      max_abs=cfg.parity.max_abs if precision == "fp32" else None)
        res.parity[label] = rep
        (log.ok if rep.passed else log.warn)(STAGE, f"parity {label}: {rep.line()}")
        if gated:
            gate(rep, str(path))
        par = f"{100 * rep.agreement:.2f}%" + ("" if rep.max_abs is None else f" Δ{rep.max_abs:.1e}")
    return ExportRow(label, path.name, _size_mb(path), par, time_backend(backend, tuple(cfg.imgsz), cfg.bench_runs))


def _stateful(res, cfg, seg, ckpt, frames, out_dir, stem, size, xseg=None, sizes=None) -> None:
    """Export ``<stem>.stateful.onnx`` and gate it: the graph stepped over the parity frames against
    the NumPy :class:`TemporalFilter` on the torch reference's logits (label agreement). ``xseg`` is
    the graph to export (the folded segmenter); ``seg`` stays the reference."""
    from pipa_edge.errors import ConfigError
    from pipa_edge.export.onnx import STATE_INIT, STATE_INPUTS, STATE_OUTPUTS, build_meta, export_onnx_stateful
    from pipa_edge.export.parity import MIN_AGREEMENT, ParityReport
    from pipa_edge.export.simplify import simplify
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import save_onnx
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.runtime.temporal import TemporalFilter

    if cfg.dynamic:
        raise ConfigError("export config: temporal.enabled needs static shapes (the state has the model's "
                          "output size); drop 'dynamic'")
    t = cfg.temporal
    path = out_dir / f"{stem}.stateful.onnx"
    proto, hw = export_onnx_stateful(xseg if xseg is not None else seg, size, alpha=t.alpha, delta=t.delta, persist=t.persist,
                                     input_format=cfg.input_format, batch=cfg.batch, opset=cfg.opset)
    if cfg.simplify:  # no random-input check: random int32 state is not a valid label map
        proto = simplify(proto, where=str(path), check_n=0)
    stateful = {"state_inputs": STATE_INPUTS, "state_outputs": STATE_OUTPUTS, "state_init": STATE_INIT,
                "state_hw": list(hw),
                "alpha": t.alpha, "delta": t.delta, "persist": t.persist}
    meta = build_meta(seg, size, cfg.input_format, "labels", "model", dynamic=False,
                      source_checkpoint=ckpt.name, stateful=stateful, sizes=sizes or {})
    save_onnx(proto, path, meta)
    res.files["onnx_stateful"] = path
    log.ok(STAGE, f"stateful ONNX (temporal filter in the graph, state {hw[0]}x{hw[1]}, alpha {t.alpha}, "
                  f"delta {t.delta}, persist {t.persist}) → {path}")
    backend = OrtBackend(path)
    par = "skipped"
    if frames is None:
        log.warn(STAGE, "parity stateful ONNX: skipped (parity disabled)")
    else:
        ref = TorchBackend(segmenter=seg, input_size=size, output="logits", output_resolution="model")
        filt = TemporalFilter(t.alpha, t.delta, t.persist)
        agree = n_px = 0
        for i in range(0, len(frames.frames) - cfg.batch + 1, cfg.batch):
            x = frames.frames[i:i + cfg.batch]
            want, got = filt.update(ref.infer(x), "logits"), backend.infer(x)
            agree, n_px = agree + int((want == got).sum()), n_px + want.size
        thr = cfg.parity.min_agreement or MIN_AGREEMENT["fp32"]
        rep = ParityReport(n_px // max(int(np.prod(hw)) * cfg.batch, 1), f"{frames.source} (stepped, vs NumPy "
                           "filter on torch logits)", None, None, agree / max(n_px, 1), thr, agree >= thr * n_px)
        res.parity["ONNX stateful"] = rep
        (log.ok if rep.passed else log.warn)(STAGE, f"parity stateful ONNX: {rep.line()}")
        gate(rep, str(path))
        par = f"{100 * rep.agreement:.2f}%"
        backend.reset_state()
    res.rows.append(ExportRow("ONNX stateful", path.name, _size_mb(path), par,
                              time_backend(backend, size, cfg.bench_runs)))


def _int8(res, cfg, seg, meta, fp32, torch_ref, frames, out_dir, stem, size) -> None:
    import onnx

    from pipa_edge.export.frames import load_frames
    from pipa_edge.export.quantize import AccuracyGateError, accuracy_gate, quantize_qdq
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import save_onnx

    calib = load_frames(cfg.int8.calib, cfg.int8.n, size, classes=seg.classes, seed=1)
    p8 = out_dir / f"{stem}.int8.onnx"
    q, hit = quantize_qdq(res.files["onnx"], p8, meta, calib.frames, calib.sha12, method=cfg.int8.method,
                          per_channel=cfg.int8.per_channel,
                          cache_dir=cfg.int8.cache_dir or out_dir / ".calib")
    m8 = dataclasses.replace(meta, precision="int8", extra=dict(meta.extra))
    m8.extra.update(calibration={"source": calib.source, "frames": len(calib.frames), "data_sha12": calib.sha12,
                                 "method": cfg.int8.method, "per_channel": cfg.int8.per_channel})
    save_onnx(onnx.load(str(q)), p8, m8)
    res.files["onnx_int8"] = p8
    log.ok(STAGE, f"INT8 QDQ ({'cached calibration' if hit else 'calibrated'} on {calib.source}) → {p8}")
    int8 = OrtBackend(p8)
    res.rows.append(_check(res, "ONNX INT8", p8, int8, torch_ref, frames, "int8", cfg, gated=False))
    lab = load_frames(cfg.int8.gate_data, cfg.int8.gate_n, size, classes=seg.classes, labels=True, seed=2)
    acc = accuracy_gate(fp32, int8, lab.frames, lab.labels, lab.source, cfg.int8.max_miou_drop)
    res.accuracy = acc.to_dict()
    (log.ok if acc.passed else log.warn)(STAGE, f"INT8 accuracy gate: {acc.line()}")
    if not acc.passed:
        raise AccuracyGateError(f"{p8}: INT8 accuracy gate failed: {acc.line()}")


def _engine(res, cfg, meta, torch_ref, frames, out_dir, stem) -> None:
    from pipa_edge.export.tensorrt import build_engine
    from pipa_edge.runtime.backends.trt_backend import TensorRTBackend
    from pipa_edge.runtime.backends.trt_common import import_trt, strongly_typed

    trt, flavour = import_trt()
    strongly = strongly_typed(trt.__version__, flavour)
    prec = cfg.precision
    src = {"int8": res.files.get("onnx_int8"), "fp16": res.files.get("onnx_fp16") if strongly else None}.get(prec)
    if prec == "int8" and not strongly and cfg.tensorrt.int8_mode == "calibrator":
        src = None
    src = src or res.files["onnx"]
    calib = None
    if prec == "int8" and src == res.files["onnx"]:
        from pipa_edge.export.frames import load_frames

        calib = load_frames(cfg.int8.calib, cfg.int8.n, tuple(cfg.imgsz), classes=meta.classes, seed=1).frames
    engine, emeta, hit = build_engine(src, meta, cfg.tensorrt, prec, out_dir, stem, flavour=flavour,
                                      calib_frames=calib)
    res.files["engine"] = engine
    how = "reused (cached)" if hit else f"built in {emeta.extra.get('build_time_s')}s"
    log.ok(STAGE, f"TensorRT {trt.__version__} {'(strongly typed) ' if strongly else ''}{prec} engine {how} → {engine}")
    res.rows.append(_check(res, f"TensorRT {prec.upper()}", engine, TensorRTBackend(engine), torch_ref, frames,
                           prec, cfg, gated=prec != "int8"))


def _deepstream(res: ExportResult, cfg: ExportConfig) -> None:
    from pipa_edge.export.deepstream import deepstream_compatible, write_deepstream
    from pipa_edge.runtime.backends.sidecar import read_sidecar

    onnx_file = res.files.get("onnx_int8") or res.files.get("onnx_fp16") or res.files["onnx"]
    meta = read_sidecar(onnx_file)
    why = deepstream_compatible(meta)
    if why:
        log.warn(STAGE, f"no DeepStream config: {why}")
        return
    cfg_file, labels = write_deepstream(meta, onnx_file, res.files.get("engine"), cfg.deepstream.network_mode,
                                        cfg.batch)
    res.files["deepstream"] = cfg_file
    log.ok(STAGE, f"DeepStream nvinfer config → {cfg_file}")
