"""The project's benchmark suite: every performance ratio the docs quote, in one run, one machine.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive .venv/bin/python bench/suite.py   # or: pipa-edge bench --suite
    OMP_NUM_THREADS=2 .venv/bin/python bench/suite.py --imgsz 128x256 --iters 20   # quicker

Figures (each a ratio of two measurements taken *interleaved* in rounds, so machine drift hits
both sides alike), all with :mod:`pipa_edge.bench` (exact percentiles, warm-up until stable):

1. exported ONNX Runtime vs torch eager (same graph: uint8 NHWC in, logits out), SegFormer-B0 and
   LR-ASPP-MobileNetV3, random weights (speed does not depend on them);
2. our onnxruntime backend vs a bare ``InferenceSession.run`` on the same file and threads;
3. ``pipa-edge run`` (``run_stream``, headless) FPS vs bare backend FPS on the same frames of the
   real dash-cam clip (LR-ASPP, torch backend, logits at model resolution: docs/runtime.md's setup);
4. temporal filter cost (softmax + EMA + hysteresis) as % of inference, on the backend's outputs;
5. PiPa++ vs mean-teacher (vs source-only) training step time on the same synthetic batch.

Writes ``docs/results/benchmarks.md`` (table + command + machine) and ``docs/results/benchmarks.json`` (everything,
raw samples included).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipa_edge.bench.report import preload_matplotlib  # noqa: E402
from pipa_edge.runtime.backends.base import Backend  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "video" / "solidWhiteRight.mp4"


class BareOrt(Backend):
    """``InferenceSession.run`` and nothing else (no checks, no preprocessing): the floor."""

    name = "onnxruntime-bare"

    def __init__(self, path: Path, meta, threads: int | None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        self.meta, self._in = meta, self.session.get_inputs()[0].name

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._in: frames})[0]


def _p50(r) -> float:
    return r.host.p50


def export_section(arch: str, hw, iters: int, rounds: int, threads: int | None, work: Path) -> tuple[list, list]:
    """torch eager vs our ORT backend vs bare ORT on one exported graph."""
    from pipa_edge.bench.latency import Case, bench_cases, build_arch
    from pipa_edge.export.onnx import build_meta, export_onnx
    from pipa_edge.runtime.backends import load_backend
    from pipa_edge.runtime.backends.sidecar import save_onnx
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    seg = build_arch(arch)
    path = work / f"{arch}_{hw[0]}x{hw[1]}_u8.onnx"
    t0 = time.perf_counter()
    from pipa_edge.export.fold import fold_for_export

    xseg, folds = fold_for_export(seg)  # as `pipa-edge export` does; eager below runs the unmodified model
    save_onnx(export_onnx(xseg, path, hw, input_format="uint8_nhwc"), path,
              build_meta(seg, hw, "uint8_nhwc", "logits", "input", folds=folds))
    export_s = time.perf_counter() - t0
    eager = TorchBackend(segmenter=seg, input_size=hw, input_format="uint8_nhwc", threads=threads)
    ort = load_backend(path, threads=threads)
    bare = BareOrt(path, ort.meta, threads)
    mb = round(path.stat().st_size / 1e6, 2)
    res = bench_cases([Case(arch, eager, mb), Case(f"{arch}.onnx", ort, mb), Case(f"{arch}.onnx", bare, mb)],
                      iters=iters, rounds=rounds, warmup_s=20.0)
    t, o, b = res
    size = f"{hw[0]}x{hw[1]}"
    figs = [
        {"figure": f"exported ORT vs torch eager ({arch}, {size})", "ratio": _p50(t) / _p50(o), "unit": "× faster",
         "a": f"torch {_p50(t):.1f} ms", "b": f"ORT {_p50(o):.1f} ms",
         "how": f"p50 torch eager / p50 our ORT backend, same uint8-NHWC graph, {iters} runs each in {rounds} "
                f"interleaved rounds (export took {export_s:.1f} s)"},
        {"figure": f"our ORT backend vs bare onnxruntime ({arch}, {size})", "ratio": _p50(o) / _p50(b),
         "unit": "× (1 = no overhead)", "a": f"backend {_p50(o):.2f} ms", "b": f"bare {_p50(b):.2f} ms",
         "how": "p50 OrtBackend.infer / p50 InferenceSession.run, same file, same threads"},
    ]
    return figs, res


def runtime_section(hw, frames: int, rounds: int, threads: int | None) -> tuple[list, dict]:
    """run_stream FPS vs bare backend FPS, and the temporal filter's cost (LR-ASPP, torch backend)."""
    import cv2

    from pipa_edge.bench.latency import build_arch
    from pipa_edge.bench.stages import decode_pass
    from pipa_edge.bench.stats import LatencyStats
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.runtime.pipeline import run_stream
    from pipa_edge.runtime.temporal import TemporalFilter

    seg = build_arch("lraspp-mbv3")
    # the configuration docs/runtime.md quotes: torch backend, logits at model resolution (stride 8)
    backend = TorchBackend(segmenter=seg, input_size=hw, output_resolution="model", threads=threads)
    source = str(VIDEO) if VIDEO.is_file() else "test://?width=960&height=540"
    _dec, imgs, _fps = decode_pass(source, max_frames=frames, keep=frames)
    x = [cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)[None] for im in imgs]
    for i in range(5):  # warm-up
        backend.infer(x[i % len(x)])
    run_fps, run_tpct, infer_ms, filt_ms = [], [], [], []
    for _ in range(rounds):
        s = run_stream(source, "none", model=backend, max_frames=len(x), log_stats=False, drop=False)
        run_fps.append(s.fps)
        run_tpct.append(s.temporal_pct_of_infer)
        filt = TemporalFilter()
        for xi in x:  # the same frames, serially: the bare backend, then the filter on its output
            t0 = time.perf_counter_ns()
            out = backend.infer(xi)
            t1 = time.perf_counter_ns()
            filt.update(out, backend.meta.output)
            t2 = time.perf_counter_ns()
            infer_ms.append((t1 - t0) / 1e6)
            filt_ms.append((t2 - t1) / 1e6)
    inf, flt = LatencyStats.from_samples(infer_ms), LatencyStats.from_samples(filt_ms)
    bare_fps = inf.fps_mean
    e2e = float(np.median(run_fps))
    figs = [
        {"figure": f"`pipa-edge run` FPS vs bare backend FPS (LR-ASPP torch {hw[0]}x{hw[1]}, headless)",
         "ratio": e2e / bare_fps, "unit": "× (1 = no pipeline cost)", "a": f"run {e2e:.1f} FPS",
         "b": f"bare {bare_fps:.1f} FPS",
         "how": f"median steady-state output FPS of {rounds} run_stream passes over {len(x)} frames, divided by "
                f"1000 / (mean Backend.infer ms) on the same frames; passes alternated"},
        {"figure": "temporal filter cost (softmax + EMA + hysteresis), % of inference",
         "ratio": 100.0 * flt.mean / inf.mean, "unit": "%", "a": f"filter mean {flt.mean:.2f} ms",
         "b": f"infer mean {inf.mean:.2f} ms",
         "how": f"mean filter / mean infer on the backend's own outputs ({len(x)}×{rounds} frames); inside "
                f"run_stream: {np.median([v for v in run_tpct if v is not None]):.1f} %"},
    ]
    detail = {"source": source, "run_fps": run_fps, "run_temporal_pct": run_tpct, "infer_ms": inf.to_dict(),
              "filter_ms": flt.to_dict(), "output_resolution": "model (stride 8)"}
    backend.close()
    return figs, detail


def train_section(arch: str, hw, batch: int, iters: int, rounds: int) -> tuple[list, list]:
    from pipa_edge.bench.train_step import bench_train_step

    rows = bench_train_step(arch, batch=batch, imgsz=hw, iters=iters, warmup=2, rounds=rounds)
    by = {r["method"]: r["step_ms"]["p50"] for r in rows}
    how = f"p50 step (forward + backward + SGD + EMA), {arch}, batch {batch}, {hw[0]}x{hw[1]}, {iters} steps in {rounds} interleaved rounds"
    figs = [
        {"figure": "PiPa++ vs mean-teacher step time", "ratio": by["pipa"] / by["mean_teacher"], "unit": "× slower",
         "a": f"PiPa++ {by['pipa']:.0f} ms", "b": f"MT {by['mean_teacher']:.0f} ms", "how": how},
        {"figure": "mean-teacher vs source-only step time", "ratio": by["mean_teacher"] / by["source_only"],
         "unit": "× slower", "a": f"MT {by['mean_teacher']:.0f} ms", "b": f"src {by['source_only']:.0f} ms", "how": how},
    ]
    return figs, rows


def write_markdown(path: Path, payload: dict) -> None:
    from pipa_edge.bench.report import rows_of

    env = payload["env"]
    lines = [
        "# Benchmarks", "",
        "Every performance figure the docs quote, measured as ratios in one run on one machine by the "
        "project's suite. Regenerate with:", "", "```", payload["command"], "```", "",
        f"Machine: {payload['machine']}. Python {env['python']}, OMP_NUM_THREADS={env['cpu']['omp_num_threads']}. "
        f"Run {env['timestamp_utc']}, took {payload['elapsed_s']:.0f} s. Load average at the start / end "
        f"(1, 5, 15 min): {payload.get('loadavg_start')} / {env['cpu'].get('loadavg')} on {env['cpu']['usable_cpus']} cores.", "",
        "**Read these as rough.** They come from a *shared 2-core x86 dev machine without a GPU*, with other "
        "engineers' jobs running at the same time: absolute milliseconds drift by tens of percent between runs. "
        "Each ratio compares measurements taken interleaved (A block, B block, ... repeated in rounds), so "
        "drift affects both sides alike; ratios are what to compare, not absolute numbers. Nothing here was "
        "measured on a GPU, with TensorRT or on a Jetson.", "",
        f"OMP_WAIT_POLICY={env['cpu'].get('omp_wait_policy')}: while developing the suite on this oversubscribed "
        "machine (load average ~10 on 2 cores; an ad-hoc check, not part of this run), torch eager inference called "
        "from the *main* thread with 2 spinning OpenMP threads was several times slower than the same calls from a "
        "worker thread, and the two agreed with `OMP_WAIT_POLICY=passive`. A first suite run without it gave "
        "torch-eager ratios inflated by that artefact, so the suite is run with `passive`; on a quiet machine leave "
        "it unset.", "",
    ]
    load = payload.get("loadavg_start") or [0.0]
    cores = env["cpu"].get("usable_cpus") or 1
    if load[0] > cores:
        lines += [f"**This run is contended: the 1-minute load average was {load[0]:.1f} on {cores} cores when it "
                  "started.** Under that much contention the ratios below say more about the machine than about the "
                  "code. Likely causes (not isolated by this run): thread pools that spin (onnxruntime's, torch's "
                  "OpenMP) lose their time slices, and a process with more runnable threads (`run_stream` has "
                  "capture, inference and output threads; the bare loop calls from one Python thread) gets a larger "
                  "share of the CPUs, which would let pipeline-vs-bare exceed 1. Quote "
                  "these figures only after a rerun on a quiet machine.", ""]
    lines += ["| figure | value | measured | how |", "|---|---|---|---|"]
    for f in payload["figures"]:
        lines.append(f"| {f['figure']} | **{f['ratio']:.2f}** {f['unit']} | {f['a']} vs {f['b']} | {f['how']} |")
    lines += ["", "## Latency details (host ms, batch 1)", "",
              "| model | backend | imgsz | p50 | p90 | p99 | max | CoV | FPS |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows_of(payload["results"]):
        lines.append(f"| {r['model']} | {r['backend']} | {r['height']}x{r['width']} | {r['p50']:.2f} | {r['p90']:.2f} | "
                     f"{r['p99']:.2f} | {r['max']:.2f} | {100 * r['cov']:.1f} % | {r['fps']:.1f} |")
    lines += ["", "## Training step", "", "| method | p50 ms | p99 ms | CoV | peak RSS MB | trainable params |",
              "|---|---|---|---|---|---|"]
    for r in payload["train"]:
        s = r["step_ms"]
        lines.append(f"| {r['method']} | {s['p50']:.1f} | {s['p99']:.1f} | {100 * s['cov']:.1f} % | "
                     f"{r['memory']['peak_mb']:.0f} | {r['trainable_params'] / 1e6:.2f} M |")
    lines += ["", "## Benchmarking your own models", "", "```",
              "pipa-edge bench model.onnx model_int8.onnx final.pt --imgsz 384x768 --iters 200   # table + JSON/CSV/PNG",
              "pipa-edge bench segformer-b0 --backend torch,onnxruntime --imgsz 512x1024 --imgsz 256x512",
              "pipa-edge bench model.engine --device cuda --e2e camera0          # + per-stage ms and frame age",
              "pipa-edge bench --train --train-arch segformer-b0                 # training step: src / MT / PiPa++",
              "pipa-edge bench --compare runs/bench/before.json runs/bench/after.json",
              "```", "", "Results go to `runs/bench/bench.{json,csv,png}` (`--out`, `--name`). The JSON keeps the "
              "environment (CPU, threads, library versions, CUDA device; on Jetson `nvpmodel -q`, `jetson_clocks "
              "--show`, tegrastats power → mJ/frame) and every raw sample.", ""]
    lines += ["", "Method: percentiles are exact over all samples with linear interpolation (numpy default); "
              "std is the sample std, CoV = std/mean; no outlier is clipped; warm-up runs until the medians of "
              "two consecutive 5-run windows agree within 5 % (at most 20 s). Peak memory on CPU is the sampled "
              "process RSS (approximate). Raw samples and the full environment are in `docs/results/benchmarks.json`.", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--imgsz", default="256x512", help="inference size HxW (default 256x512)")
    ap.add_argument("--iters", type=int, default=40, help="timed runs per latency row (default 40)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaving rounds (default 5)")
    ap.add_argument("--frames", type=int, default=100, help="frames per run_stream pass (default 100)")
    ap.add_argument("--train-imgsz", default="128x128")
    ap.add_argument("--train-batch", type=int, default=2)
    ap.add_argument("--train-iters", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "docs" / "results"), help="folder for benchmarks.md/.json (default docs/results/)")
    ap.add_argument("--render-only", action="store_true", help="rewrite benchmarks.md from benchmarks.json, no runs")
    a = ap.parse_args(argv)
    if a.render_only:
        import json

        src = Path(a.out) / "benchmarks.json"
        write_markdown(Path(a.out) / "benchmarks.md", json.loads(src.read_text()))
        print(f"rewrote {Path(a.out) / 'benchmarks.md'} from {src}")
        return 0

    preload_matplotlib()  # before GStreamer is loaded (see pipa_edge.bench.report.preload_matplotlib)
    import torch

    from pipa_edge.bench.env import capture_env, describe_machine
    from pipa_edge.bench.latency import default_threads, parse_imgsz
    from pipa_edge.bench.report import print_table, write_json

    threads = default_threads()
    if threads:
        torch.set_num_threads(threads)
    hw, thw = parse_imgsz(a.imgsz), parse_imgsz(a.train_imgsz)
    load0 = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    figures, results = [], []
    with tempfile.TemporaryDirectory(prefix="pipa-suite-") as tmp:
        work = Path(tmp)
        for arch in ("segformer-b0", "lraspp-mbv3"):
            f, r = export_section(arch, hw, a.iters, a.rounds, threads, work)
            figures += f
            results += r
        f, train = train_section("segformer-b0", thw, a.train_batch, a.train_iters, min(a.rounds, a.train_iters))
        figures += f
        f, runtime = runtime_section(hw, a.frames, max(2, a.rounds // 2), threads)
        figures += f
    env = capture_env()
    envs = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if os.environ.get(k)]
    cmd = " ".join(envs + [".venv/bin/python bench/suite.py"]
                   + [shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])])
    payload = {"command": cmd, "machine": describe_machine(env) + " — shared 2-core dev machine, other jobs running",
               "env": env, "loadavg_start": load0, "elapsed_s": time.perf_counter() - t0, "figures": figures,
               "results": [r.to_dict() for r in results], "train": train, "runtime": runtime}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "benchmarks.json", payload)
    write_markdown(out / "benchmarks.md", payload)
    print_table(payload["results"], title="suite latency rows")
    for f in figures:
        print(f"{f['figure']}: {f['ratio']:.2f} {f['unit']}  ({f['a']} vs {f['b']})")
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'} in {payload['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
