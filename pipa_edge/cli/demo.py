"""``pipa-edge demo``: the main job on the embedded default, end to end.

synthetic sim→real data → source-only training on *sim* → PiPa++ adaptation on unlabelled *real*
→ evaluation on *real* (table + IoU plot) → ONNX export with parity gate → ``pipa-edge run
test://`` writing an overlay video and a stats summary. Sized to finish in a few minutes on 2 CPU
cores; every stage is the same Python API the individual commands use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic data → PiPa++ training → ONNX export → video run, end to end",
                       description="Run the whole pipeline on the embedded synthetic sim→real data.")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--iters", type=int, default=250, help="source-only iterations (default 250)")
    p.add_argument("--adapt-iters", type=int, default=150, help="PiPa++ iterations (0 = skip adaptation)")
    p.add_argument("--frames", type=int, default=150, help="frames of test:// to segment (default 150)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-sim", type=int, default=200, help="synthetic sim (source) images (default 200)")
    p.add_argument("--n-real", type=int, default=100, help="synthetic real-style (target) images (default 100)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: OMP_NUM_THREADS, else the usable CPUs; see docs/runtime.md)")
    p.set_defaults(func=run)


def _recipe(name: str) -> Path:
    from pipa_edge.errors import ConfigError

    path = REPO / "train" / name
    if not path.is_file():
        raise ConfigError(f"{path}: demo recipe not found (run the demo from a pipa-edge checkout)")
    return path


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from pipa_edge import log
    from pipa_edge.fileio import write_text
    from pipa_edge.threads import describe, set_threads

    threads = set_threads(args.threads)
    log.stage("demo", f"CPU: {describe()}")
    t0 = time.perf_counter()
    out = Path(args.out)
    data = out / "data"
    times: dict[str, float] = {}
    _data(args, data, times)
    results, ckpt = _train(args, data, out, threads, times)
    plot = _plot_per_class(results, out / "per_class_iou.png")  # before GStreamer runs (see _plot_per_class)
    onnx_path = _export(ckpt, out, times)

    # 5. run on the embedded moving scene
    t = time.perf_counter()
    log.stage("demo", f"5/5 pipa-edge run test:// → {out / 'overlay.mp4'} ({args.frames} frames)")
    from pipa_edge.runtime import run_stream

    summary = run_stream("test://", str(out / "overlay.mp4"), str(onnx_path), max_frames=args.frames,
                         stats_json=str(out / "run_summary.json"), backend_opts={"threads": threads})
    times["run"] = time.perf_counter() - t

    _report(results, times, out, summary, time.perf_counter() - t0)
    log.ok("demo", f"per-class IoU plot → {plot}")
    write_text(out / "demo_summary.json", json.dumps(
        {"miou": {k: _real_miou(v) for k, v in results.items()}, "seconds": times,
         "total_s": round(time.perf_counter() - t0, 1), "threads": threads,
         "onnx": str(onnx_path), "video": str(out / "overlay.mp4")}, indent=2))
    log.next_command(f"pipa-edge run test:// display://0 --model {onnx_path}")
    return 0


def _data(args: argparse.Namespace, data: Path, times: dict) -> None:
    """1. the synthetic sim→real data (kept when already there)."""
    import time

    from pipa_edge import log
    from pipa_edge.data.synth import generate

    t = time.perf_counter()
    if (data / "meta.json").is_file():
        log.stage("demo", f"1/5 synthetic data already in {data}")
    else:
        log.stage("demo", f"1/5 generating synthetic sim→real data in {data}")
        generate(data, n_sim=args.n_sim, n_real=args.n_real, size=(128, 256), seed=args.seed)
    times["data"] = time.perf_counter() - t


def _train(args: argparse.Namespace, data: Path, out: Path, threads: int, times: dict) -> tuple[dict, Path]:
    """2. source-only on sim, 3. PiPa++ on unlabelled real; returns ``({model: metrics}, checkpoint)``."""
    import time

    from pipa_edge import log
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import train

    common = [f"source.root={data}", f"seed={args.seed}", "model.arch=segformer-b0", f"threads={threads}",
              f"val=[{{type: synth, root: {data}, split: real, limit: 48}}]"]
    t = time.perf_counter()
    log.stage("demo", f"2/5 source-only training on sim ({args.iters} iterations)")
    src_cfg = load_train_config(_recipe("synth_source_only.yaml"), common + [
        f"optim.max_iters={args.iters}", f"out_dir={out / 'source_only'}",
        f"eval_interval={args.iters}", f"ckpt_interval={args.iters}"])
    src = train(src_cfg)
    times["source_only"] = time.perf_counter() - t
    results = {"source-only": src.metrics}
    ckpt = src.checkpoint
    if args.adapt_iters <= 0:
        log.stage("demo", "3/5 adaptation skipped (--adapt-iters 0)")
        return results, ckpt
    t = time.perf_counter()
    log.stage("demo", f"3/5 PiPa++ adaptation on unlabelled real-style images ({args.adapt_iters} iterations)")
    ad_cfg = load_train_config(_recipe("synth_pipa.yaml"), common + [
        f"target.root={data}", f"init_from={ckpt}", f"optim.max_iters={args.adapt_iters}",
        f"out_dir={out / 'pipa'}", f"eval_interval={args.adapt_iters}", f"ckpt_interval={args.adapt_iters}"])
    ad = train(ad_cfg)
    times["pipa"] = time.perf_counter() - t
    results["PiPa++"] = ad.metrics
    return results, ad.checkpoint


def _export(ckpt: Path, out: Path, times: dict) -> Path:
    """4. ONNX export with the parity gate; returns the ONNX path."""
    import time

    from pipa_edge import log
    from pipa_edge.export.config import ExportConfig
    from pipa_edge.export.exporter import export

    t = time.perf_counter()
    log.stage("demo", "4/5 ONNX export (opset 17, onnxsim, parity gate)")
    exp = export(ckpt, ExportConfig(imgsz=(128, 256), output="probs", output_resolution="model",
                                    out_dir=str(out / "export"), name="model", bench_runs=5))
    times["export"] = time.perf_counter() - t
    return exp.files["onnx"]


def _real_miou(metrics: dict) -> float | None:
    for name, summary in (metrics or {}).items():
        if "real" in name and isinstance(summary, dict) and summary.get("miou") is not None:
            return float(summary["miou"])
    return None


def _plot_per_class(results: dict, path: Path) -> Path:
    """Grouped bars: per-class IoU on real-style images of each trained model.

    Drawn before the runtime step: matplotlib's FreeType module is known to crash when first
    imported after a GStreamer pipeline ran in the same process.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = {}
    for name, metrics in results.items():
        for key, summary in (metrics or {}).items():
            if "real" in key and isinstance(summary, dict) and summary.get("per_class_iou"):
                rows[name] = summary["per_class_iou"]
    classes = list(next(iter(rows.values())).keys()) if rows else []
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(len(rows), 1)
    for i, (name, ious) in enumerate(rows.items()):
        vals = [100.0 * (ious[c] or 0.0) for c in classes]
        ax.bar(np.arange(len(classes)) + i * width, vals, width, label=f"{name} (mIoU {100 * _real_miou(results[name]):.1f})")
    ax.set_xticks(np.arange(len(classes)) + width * (len(rows) - 1) / 2, classes, rotation=30, ha="right")
    ax.set_ylabel("IoU on real-style (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right")
    ax.set_title("pipa-edge demo: per-class IoU, synthetic sim → real-style")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _report(results: dict, times: dict, out: Path, summary, total: float) -> None:
    from rich.table import Table

    from pipa_edge import log

    tab = Table(title="pipa-edge demo: synthetic sim → real-style")
    tab.add_column("model")
    tab.add_column("mIoU on real-style (%)", justify="right")
    for name, metrics in results.items():
        m = _real_miou(metrics)
        tab.add_row(name, "n/a" if m is None else f"{100 * m:.1f}")
    log.console.print(tab)
    fps = getattr(summary, "fps", None)
    stage_times = ", ".join(f"{k} {v:.0f}s" for k, v in times.items())
    log.ok("demo", f"done in {total:.0f}s ({stage_times}); run FPS {fps if fps is None else round(fps, 1)}; "
                   f"outputs in {out}")
