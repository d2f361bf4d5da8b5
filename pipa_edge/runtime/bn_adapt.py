"""``pipa-edge adapt-bn``'s Python API: re-estimate a deployed ONNX model's BatchNorm statistics on
frames of the deployment domain, on the device, without torch (numpy, onnx, onnxruntime, OpenCV).

:func:`adapt_bn_onnx` runs the export's statistics graph (``<stem>.bnstats.onnx``) over the frames
with onnxruntime — the frames preprocessed as every runtime backend does (resize to the model input,
:meth:`Backend.preprocess`) — averages the per-batch statistics exactly as ``pipa-edge adabn`` does
(:func:`pipa_edge.train.precise_bn.recompute_bn_stats`: the plain mean over batches of each batch's
mean and unbiased variance, the network normalised by each batch's own statistics; batches of at
most ``batch_size`` frames, near-equal sizes, none of one frame), re-folds them into the deployable
graph (:mod:`.bn_refold`) and writes a new ``.onnx`` + sidecar (+ companion, so it can be adapted
again). The input model is never overwritten. The export writes the companion with
:func:`save_companion`; ``--engine`` (rebuilding a TensorRT engine from the new ONNX) is
:func:`pipa_edge.export.bn_adapt.build_engine_for`.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import numpy as np

from pipa_edge.batching import near_equal_batches as batch_sizes
from pipa_edge.errors import ConfigError, DataError, ModelFileError
from pipa_edge.runtime.backends.base import Backend
from pipa_edge.runtime.bn_refold import BNLayer, refold

COMPANION_FORMAT = "pipa-edge-bnadapt/1"
STAGE = "adapt-bn"
MIN_FRAMES = 8


def companion_paths(model: str | Path) -> tuple[Path, Path]:
    """``model.onnx`` → (``model.bnadapt.npz``, ``model.bnstats.onnx``)."""
    p = Path(model)
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.stem
    return p.with_name(f"{stem}.bnadapt.npz"), p.with_name(f"{stem}.bnstats.onnx")


def default_out_path(model: str | Path) -> Path:
    """``runs/x/best.onnx`` → ``runs/x/best_adapted.onnx``."""
    p = Path(model)
    return p.with_name(f"{p.name[:-5] if p.name.endswith('.onnx') else p.stem}_adapted.onnx")


def save_companion(path: Path, layers: list[BNLayer], model_path: Path, stats_path: Path, extra: dict) -> Path:
    from pipa_edge.fileio import atomic_write, file_sha256

    spec = {"format": COMPANION_FORMAT, "model_sha256": file_sha256(model_path), "stats_graph": stats_path.name,
            "stats_sha256": file_sha256(stats_path), **extra,
            "layers": [{"name": la.name, "eps": la.eps, "channels": la.channels, "targets": la.targets}
                       for la in layers]}
    arrays = {"spec": np.array(json.dumps(spec))}
    for i, la in enumerate(layers):
        arrays.update({f"gamma_{i}": la.gamma, f"beta_{i}": la.beta, f"mean_{i}": la.mean, f"var_{i}": la.var})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_companion(model: Path) -> tuple[dict, list[BNLayer], Path]:
    """``(spec, layers, stats_graph_path)`` for ``model``; one-line errors when absent or stale."""
    from pipa_edge.fileio import file_sha256

    comp, _ = companion_paths(model)
    if not comp.is_file():
        raise ModelFileError(f"{model}: no BN adaptation data ({comp.name} not found next to it); re-export "
                             "with `pipa-edge export` (bn_adapt is on by default; a model without BatchNorm "
                             "layers has nothing to re-estimate)")
    try:
        z = np.load(comp, allow_pickle=False)
        spec = json.loads(str(z["spec"]))
        layers = [BNLayer(d["name"], z[f"gamma_{i}"], z[f"beta_{i}"], z[f"mean_{i}"], z[f"var_{i}"],
                          float(d["eps"]), list(d["targets"])) for i, d in enumerate(spec["layers"])]
    except Exception as e:  # noqa: BLE001 - zip/JSON/KeyError from a damaged file
        raise ModelFileError(f"{comp}: unreadable BN adaptation data ({type(e).__name__}: {e})") from None
    if spec.get("format") != COMPANION_FORMAT:
        raise ModelFileError(f"{comp}: format {spec.get('format')!r}, expected {COMPANION_FORMAT!r}")
    if spec["model_sha256"] != file_sha256(model):
        raise ModelFileError(f"{comp}: belongs to another version of {Path(model).name} (sha256 differs); "
                             "re-export the model")
    stats = comp.with_name(spec["stats_graph"])
    if not stats.is_file() or file_sha256(stats) != spec["stats_sha256"]:
        raise ModelFileError(f"{stats}: statistics graph missing or changed; re-export the model")
    return spec, layers, stats


class StatsGraph(Backend):
    """The statistics graph behind the runtime's preprocessing: frames → per-layer (mean, var)."""

    name = "onnxruntime-bnstats"

    def __init__(self, path: Path, meta, providers=None):
        from pipa_edge.runtime.backends.ort_backend import make_session

        self.meta = meta
        self.session = make_session(path, providers)  # the same session options as OrtBackend
        self._in = self.session.get_inputs()[0].name
        self._outs = [o.name for o in self.session.get_outputs()]

    def infer(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        o = self.session.run(self._outs, {self._in: self.preprocess(frames)})
        return [(o[i].astype(np.float64), o[i + 1].astype(np.float64)) for i in range(0, len(o), 2)]

    def close(self) -> None:
        self.session = None


def estimate(runner: StatsGraph, frames, count: int, batch_size: int, bar=None, keep: list | None = None):
    """Average per-batch statistics over the frames → ``([(mean, var)], batches used)``."""
    sums: list | None = None
    used = 0
    sizes, buf = iter(batch_sizes(count, batch_size)), []
    want = next(sizes, batch_size)

    def flush() -> None:
        nonlocal sums, used
        if len(buf) >= 2:  # one frame's statistics are skipped, as in recompute_bn_stats
            x = np.stack(buf)
            if keep is not None and not keep:
                keep.append(x)
            st = runner.infer(x)
            sums = st if sums is None else [(a + m, b + v) for (a, b), (m, v) in zip(sums, st)]
            used += 1
        if bar is not None:
            bar.advance(len(buf))
        buf.clear()

    for img in frames:
        buf.append(img)
        if len(buf) == want:
            flush()
            want = next(sizes, batch_size)
    flush()
    if not used:
        return None, 0
    return [(m / used, v / used) for m, v in sums], used


def change_summary(layers: list[BNLayer], new: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Per layer: mean |Δμ| in units of the old σ, mean |Δ log σ²|; and their mean / max over layers."""
    per = []
    for la, (m, v) in zip(layers, new):
        sd0 = np.sqrt(la.var + la.eps)
        per.append({"layer": la.name, "mean_abs_dmean_sd": float(np.mean(np.abs(m - la.mean) / sd0)),
                    "mean_abs_dlogvar": float(np.mean(np.abs(np.log((v + la.eps) / (la.var + la.eps)))))})
    dm = [p["mean_abs_dmean_sd"] for p in per]
    dv = [p["mean_abs_dlogvar"] for p in per]
    return {"layers": len(per), "mean_abs_dmean_sd": float(np.mean(dm)), "max_abs_dmean_sd": float(np.max(dm)),
            "mean_abs_dlogvar": float(np.mean(dv)), "max_abs_dlogvar": float(np.max(dv)), "per_layer": per}


def adapt_bn_onnx(model: str | Path, frames: str | Path, out: str | Path | None = None, *, num_frames: int = 200,
                  batch_size: int = 8, min_frames: int = MIN_FRAMES, providers=None, show_progress: bool = True) -> dict:
    """Write ``out`` (default :func:`default_out_path`): ``model`` with BN statistics re-estimated on
    ``frames`` (a folder, a ``run --collect`` folder or a video). Returns a report (``out``, frames,
    batches, seconds, change summary, label change on the first batch, ``engine``: None, set by the
    caller that rebuilds one)."""
    from pipa_edge import log
    from pipa_edge.data.bn_frames import open_frames
    from pipa_edge.runtime.backends.sidecar import read_sidecar

    src, dst = Path(model), Path(out) if out is not None else default_out_path(model)
    if batch_size < 2:
        raise ConfigError(f"--batch-size {batch_size}: need at least 2 frames per batch")
    if not src.is_file():
        raise ModelFileError(f"{src}: model file not found")
    if dst.resolve() == src.resolve():
        raise ConfigError(f"--out {dst}: refusing to overwrite the model it reads; choose another path")
    meta = read_sidecar(src)
    spec, layers, stats_path = load_companion(src)
    fs = open_frames(frames, num_frames)
    if fs.count < max(min_frames, 2):
        raise DataError(f"--frames {frames}: {fs.count} frame(s) found; need at least {max(min_frames, 2)} "
                        "to re-estimate BatchNorm statistics")
    log.stage(STAGE, f"{src.name}: {len(layers)} BN layer(s); statistics from {fs.describe()}")
    t0, first = time.perf_counter(), []
    with StatsGraph(stats_path, meta, providers) as runner, \
            log.progress("adapt-bn: BN statistics", fs.count, disable=not show_progress) as bar:
        new, used = estimate(runner, fs.frames(tuple(meta.input_size)), fs.count, batch_size, bar, first)
    secs = time.perf_counter() - t0
    if new is None:
        raise DataError(f"--frames {frames}: no batch of 2 or more frames could be read")
    import onnx

    proto = refold(onnx.load(str(src)), layers, new)
    change = change_summary(layers, new)
    record = {"from_model": src.name, "from_sha256": spec["model_sha256"],
              "frames": {"kind": fs.kind, "path": str(fs.path), "count": fs.read, "available": fs.total,
                         "sha12": fs.sha12}, "batches": used, "batch_size": batch_size,
              "change": {k: v for k, v in change.items() if k != "per_layer"},
              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write(proto, dst, meta, record, layers, new, stats_path, spec)
    report = {"model": str(src), "out": str(dst), **record, "seconds": round(secs, 2), "change": change,
              "labels_changed": _label_change(src, dst, first[0] if first else None), "engine": None}
    return report


def _write(proto, dst: Path, meta, record: dict, layers, new, stats_path: Path, spec: dict) -> None:
    import dataclasses

    from pipa_edge.runtime.backends.sidecar import save_onnx

    extra = {k: v for k, v in meta.extra.items() if k not in ("file_sha256", "onnx_sha256")}
    history = list(extra.get("bn_adaptations", []))
    extra["bn_adaptations"] = history + [record]
    save_onnx(proto, dst, dataclasses.replace(meta, extra=extra))
    from pipa_edge.fileio import file_sha256

    comp = companion_paths(dst)[0]
    stats_dst = dst.parent / stats_path.name  # one statistics graph serves every adapted model in a folder
    if stats_dst.resolve() != stats_path.resolve() and (not stats_dst.is_file() or
                                                         file_sha256(stats_dst) != spec["stats_sha256"]):
        shutil.copyfile(stats_path, stats_dst)
    new_layers = [BNLayer(la.name, la.gamma, la.beta, m.astype(np.float64), v.astype(np.float64), la.eps,
                          la.targets) for la, (m, v) in zip(layers, new)]
    save_companion(comp, new_layers, dst, stats_dst,
                   {k: v for k, v in spec.items() if k not in ("format", "model_sha256", "stats_graph",
                                                               "stats_sha256", "layers")})


def _label_change(src: Path, dst: Path, x: np.ndarray | None) -> float | None:
    """Share of output pixels whose class changed on the first batch; loads ``dst`` as the runtime will."""
    from pipa_edge.runtime.backends.ort_backend import OrtBackend

    if x is None:
        return None
    with OrtBackend(src) as old, OrtBackend(dst) as new:
        a, b = old.infer(x), new.infer(x)
    la, lb = (a, b) if new.meta.output == "labels" else (a.argmax(1), b.argmax(1))
    return float((la != lb).mean())
