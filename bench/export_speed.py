"""Export speed benchmark: torch eager vs exported ONNX Runtime FP32 / INT8 vs OpenVINO, plus export wall time.

    OMP_NUM_THREADS=2 .venv/bin/python bench/export_speed.py            # 512x1024, SegFormer-B0 + LR-ASPP
    OMP_NUM_THREADS=2 .venv/bin/python bench/export_speed.py --imgsz 256 512 --runs 5   # quick

For each architecture (random weights: speed does not depend on them) it exports the graph with
in-graph preprocessing (uint8 NHWC frame in, logits at input resolution out), then measures the
median batch-1 latency of each backend on the same frame, and, interleaved round by round, the two
key ratios: torch eager / our ORT backend, and our ORT backend / bare ``InferenceSession.run`` on
the same file. Writes ``docs/results/export_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def interleaved(fa, fb, rounds: int) -> dict:
    """Alternate A and B each round (order flipped every round); ratio of medians and median of ratios."""
    fa(), fb()
    ta, tb = [], []
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for k in order:
            t = time.perf_counter()
            (fa if k == 0 else fb)()
            (ta if k == 0 else tb).append(time.perf_counter() - t)
    ta, tb = np.array(ta), np.array(tb)
    return {"a_ms": float(np.median(ta) * 1e3), "b_ms": float(np.median(tb) * 1e3),
            "ratio_of_medians": float(np.median(ta) / np.median(tb)), "median_of_ratios": float(np.median(ta / tb)),
            "rounds": rounds}


def bench_arch(arch: str, size, runs: int, rounds: int, out: Path, threads: int) -> dict:
    import onnxruntime as ort
    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.export.config import ExportConfig
    from pipa_edge.export.exporter import export
    from pipa_edge.models import build_segmenter, save_segmenter
    from pipa_edge.runtime.backends import available_backends, load_backend

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    ckpt = save_segmenter(out / f"{arch}.pt", build_segmenter(arch, SYNTH11).eval())
    base = {"imgsz": list(size), "out_dir": str(out), "bench_runs": 0, "input_format": "uint8_nhwc",
            "output": "logits", "output_resolution": "input", "parity": {"n": 2}, "deepstream": {"enabled": False}}
    t = time.perf_counter()
    res32 = export(ckpt, ExportConfig.model_validate(base))
    export_fp32_s = time.perf_counter() - t
    t = time.perf_counter()
    res8 = export(ckpt, ExportConfig.model_validate({**base, "precision": "int8", "name": f"{arch}-q",
                                                     "int8": {"n": 8, "gate_n": 2, "max_miou_drop": 1.0}}))
    export_int8_s = time.perf_counter() - t
    frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    row = {"arch": arch, "imgsz": list(size), "export_fp32_s": round(export_fp32_s, 1),
           "export_int8_s": round(export_int8_s, 1), "ms": {}, "parity": {}}
    tb = load_backend(ckpt, input_size=size, threads=threads)
    ob = load_backend(res32.files["onnx"], threads=threads)
    qb = load_backend(res8.files["onnx_int8"], threads=threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    bare = ort.InferenceSession(str(res32.files["onnx"]), so, providers=["CPUExecutionProvider"])
    feed = {bare.get_inputs()[0].name: frame}
    row["ms"]["torch eager"] = median_ms(lambda: tb.infer(frame), runs)
    from pipa_edge.export.fold import fold_for_export
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    fseg, folds = fold_for_export(load_segmenter(ckpt))
    row["folds"] = folds
    if folds:  # the exported graph's rewrites applied to eager torch too: how much of the gap is the fold
        tfb = TorchBackend(segmenter=fseg, input_size=size, threads=threads)
        row["ms"]["torch eager, folded as exported"] = median_ms(lambda: tfb.infer(frame), runs)
    row["ms"]["ORT FP32 (pipa backend)"] = median_ms(lambda: ob.infer(frame), runs)
    row["ms"]["ORT FP32 (bare session.run)"] = median_ms(lambda: bare.run(None, feed), runs)
    row["ms"]["ORT INT8 QDQ"] = median_ms(lambda: qb.infer(frame), runs)
    if "openvino" in available_backends():
        from pipa_edge.export.openvino import export_openvino

        xml = export_openvino(res32.files["onnx"], out / f"{arch}.openvino")
        vb = load_backend(xml, threads=threads)
        row["ms"]["OpenVINO FP32"] = median_ms(lambda: vb.infer(frame), runs)
    row["parity"] = {k: v.to_dict() for k, v in {**res32.parity, **res8.parity}.items()}
    row["int8_accuracy_gate"] = res8.accuracy
    row["interleaved_torch_vs_ort"] = interleaved(lambda: tb.infer(frame), lambda: ob.infer(frame), rounds)
    if folds:
        row["interleaved_torch_folded_vs_ort"] = interleaved(lambda: tfb.infer(frame), lambda: ob.infer(frame), rounds)
    row["interleaved_backend_vs_bare"] = interleaved(lambda: ob.infer(frame), lambda: bare.run(None, feed), rounds)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["segformer-b0", "lraspp-mbv3"])
    ap.add_argument("--imgsz", type=int, nargs=2, default=[512, 1024])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds for the key ratios")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_export"))
    ap.add_argument("--json", default=str(REPO / "docs" / "results" / "export_speed.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("PIPA_NO_PROGRESS", "1")
    threads = int(os.environ.get("OMP_NUM_THREADS", "2") or 2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [bench_arch(a, tuple(args.imgsz), args.runs, args.rounds, out, threads) for a in args.archs]
    import onnxruntime
    import torch

    result = {"command": "OMP_NUM_THREADS=%d python bench/export_speed.py %s" % (threads, " ".join(argv or sys.argv[1:])),
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads,
                          "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
              "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print_table(rows)
    print("\n" + markdown(result))
    print(f"wrote {args.json}")
    return 0


def markdown(d: dict) -> str:
    """The tables of docs/benchmarks.md, from the JSON."""
    m = d["machine"]
    lines = [f"Run: `{d['command'].strip()}`, {m['date']}; torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
             f"{m['threads']} threads; random weights, batch 1, uint8 RGB frame in → logits at input resolution out.",
             "", "| model | torch eager | torch eager, folded as exported | ORT FP32 (pipa backend) "
             "| ORT FP32 (bare `session.run`) | ORT INT8 QDQ | OpenVINO FP32 | export wall FP32 / INT8 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        ms = r["ms"]
        ref = ms["torch eager"]

        def cell(k):
            return f"{ms[k]:.0f} ms ({ref / ms[k]:.1f}×)" if k in ms else "n/a"

        lines.append(f"| {r['arch']} @ {r['imgsz'][0]}×{r['imgsz'][1]} | {ref:.0f} ms "
                     f"| {cell('torch eager, folded as exported')} | {cell('ORT FP32 (pipa backend)')} "
                     f"| {cell('ORT FP32 (bare session.run)')} | {cell('ORT INT8 QDQ')} | {cell('OpenVINO FP32')} "
                     f"| {r['export_fp32_s']} s / {r['export_int8_s']} s |")
    lines += ["", "Key ratios, interleaved (A and B alternate, order flipped each round):", "",
              "| model | torch eager / ORT FP32 (target ≥ 4×) | torch eager folded / ORT FP32 "
              "| pipa ORT backend / bare `session.run` (target ≤ 1.05×) |",
              "|---|---|---|---|"]
    for r in d["rows"]:
        a, b = r["interleaved_torch_vs_ort"], r["interleaved_backend_vs_bare"]
        c = r.get("interleaved_torch_folded_vs_ort")
        folded = (f"{c['ratio_of_medians']:.2f}× (median of ratios {c['median_of_ratios']:.2f}×)" if c
                  else "n/a (no fold applies)")
        lines.append(f"| {r['arch']} | {a['ratio_of_medians']:.2f}× (median of {a['rounds']} per-round ratios "
                     f"{a['median_of_ratios']:.2f}×) | {folded} | {b['ratio_of_medians']:.3f}× (median of per-round ratios "
                     f"{b['median_of_ratios']:.3f}×) |")
    return "\n".join(lines)


def print_table(rows) -> None:
    for r in rows:
        h, w = r["imgsz"]
        print(f"\n{r['arch']} @ {h}x{w}  (export: FP32 {r['export_fp32_s']}s incl. simplify+parity, "
              f"INT8 {r['export_int8_s']}s incl. calibration+gates)")
        ref = r["ms"]["torch eager"]
        print(f"  {'backend':32s} {'median ms':>10s} {'speed-up vs torch':>18s}")
        for k, v in r["ms"].items():
            print(f"  {k:32s} {v:10.1f} {ref / v:17.2f}x")
        a, b = r["interleaved_torch_vs_ort"], r["interleaved_backend_vs_bare"]
        print(f"  interleaved x{a['rounds']}: torch/ORT = {a['ratio_of_medians']:.2f}x "
              f"(median of ratios {a['median_of_ratios']:.2f}x); pipa ORT backend / bare session.run = "
              f"{b['ratio_of_medians']:.3f}x (median of ratios {b['median_of_ratios']:.3f}x)")
        if r.get("interleaved_torch_folded_vs_ort"):
            c = r["interleaved_torch_folded_vs_ort"]
            print(f"  interleaved: torch folded/ORT = {c['ratio_of_medians']:.2f}x (median of ratios "
                  f"{c['median_of_ratios']:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
