"""Benchmark: does collection slow the inference loop? FPS with vs without a Collector.

The loop is the runtime's inference step: ``backend.infer`` (torch backend, probabilities) and,
with collection, ``collector.offer(frame, probs, t)``. Runs alternate without/with (×``--rounds``)
against machine noise. Frames are synthetic smooth scenes that drift slowly (so the stability,
blur and dedup rules see video-like input); the collector is set to accept as much as it can
(worst case for contention: its worker thread encodes and fsyncs PNG/JPEG files continuously).

    OMP_NUM_THREADS=2 .venv/bin/python bench/collect_overhead.py --json docs/results/collection_overhead_cpu.json
    python3 bench/collect_overhead.py --device cuda --size 512 1024 --json $OUT/overhead.json   # a GPU box
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def frames(n: int, hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    h, w = hw
    base = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    out = []
    for i in range(n):
        shift = i * 0.5  # slow pan
        m = np.float32([[1, 0, -shift], [0, 1, 0]])
        small = cv2.warpAffine(base, m, (base.shape[1], base.shape[0]), borderMode=cv2.BORDER_REFLECT)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8))
    return out


def loop(backend, fr, full, collector, repeats: int) -> dict:
    """``fr``: frames at the model input size; ``full``: the camera frames offered to the collector."""
    import torch

    infer, offer = [], []
    sync = torch.cuda.synchronize if backend.device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    k = 0
    for _ in range(repeats):
        for f, g in zip(fr, full):
            a = time.perf_counter()
            p = backend.infer(f[None])[0]
            sync()
            b = time.perf_counter()
            if collector is not None:
                collector.offer(g, p, t=k * 0.04)  # 25 fps stream time
            c = time.perf_counter()
            infer.append(b - a)
            offer.append(c - b)
            k += 1
    wall = time.perf_counter() - t0
    return {"frames": k, "fps": k / wall, "infer_ms_median": 1e3 * float(np.median(infer)),
            "offer_ms_median": 1e3 * float(np.median(offer)), "offer_ms_max": 1e3 * float(np.max(offer))}


PERMISSIVE = ["thresholds.value=0", "min_confident_fraction=0", "max_mean_entropy=1", "min_blur_var=0",
              "min_interval_s=0", "stability.max_flip_rate=1", "dedup.max_hamming=2", "storage.max_samples=50",
              "storage.save_confidence=true"]


def runtime_mode(args) -> dict:
    """The whole runtime (``run_stream``: capture → infer → temporal filter → overlay → sink ``none``)
    on ``test://`` with the NumPy palette backend (``--delay`` emulates an accelerator's latency)."""
    from pipa_edge.runtime.pipeline import run_stream
    from pipa_edge.runtime.toy import PaletteBackend

    h, w = args.frame_size
    res = {"command": "python bench/collect_overhead.py " + " ".join(sys.argv[1:]), "mode": "runtime",
           "input": args.size, "frame": args.frame_size, "delay_s": args.delay, "without": [], "with": []}
    tmp = Path(tempfile.mkdtemp(prefix="pipa-collect-rt-"))
    try:
        for r in range(args.rounds):
            for kind in ("without", "with"):
                be = PaletteBackend(input_size=tuple(args.size), output="logits", delay_s=args.delay)
                s = run_stream(f"test://?width={w}&height={h}", "none", be, max_frames=args.frames, log_stats=False,
                               collect=str(tmp / f"c{r}") if kind == "with" else None, collect_set=PERMISSIVE)
                res[kind].append({"fps": s.fps, "infer_ms_p50": s.infer_ms_p50, "frames": s.frames,
                                  "collect": s.collect})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["fps_without"] = float(np.mean([x["fps"] for x in res["without"]]))
    res["fps_with"] = float(np.mean([x["fps"] for x in res["with"]]))
    res["fps_change_percent"] = 100 * (res["fps_with"] / res["fps_without"] - 1)
    saved = sum((x["collect"] or {}).get("saved", 0) for x in res["with"])
    per = {k: ", ".join(f"{x['fps']:.1f}" for x in res[k]) for k in ("without", "with")}
    print(f"| runtime test:// {w}x{h} → palette {args.size[0]}x{args.size[1]} delay {args.delay * 1e3:.0f} ms | "
          f"{res['fps_without']:.1f} ({per['without']}) | {res['fps_with']:.1f} ({per['with']}) | "
          f"{res['fps_change_percent']:+.1f}% | saved {saved} |")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="segformer-b0")
    ap.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    ap.add_argument("--frame-size", type=int, nargs=2, default=[540, 960], metavar=("H", "W"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--output-resolution", default="model", choices=("model", "input"))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--runtime", action="store_true", help="time the whole run_stream loop (test:// + palette backend)")
    ap.add_argument("--delay", type=float, default=0.0, help="--runtime: emulated model latency in seconds")
    args = ap.parse_args()
    if args.runtime:
        res = runtime_mode(args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1, default=str))
        return 0
    import torch

    from pipa_edge.data.classes import CITYSCAPES19
    from pipa_edge.models.zoo import build_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.runtime.collect import CollectConfig, Collector

    torch.manual_seed(0)
    seg = build_segmenter(args.arch, CITYSCAPES19).eval()
    backend = TorchBackend(segmenter=seg, input_size=tuple(args.size), output="probs",
                           output_resolution=args.output_resolution, device=args.device)
    import cv2

    fr = frames(args.frames, tuple(args.frame_size))
    fr_in = [cv2.resize(f, (args.size[1], args.size[0]), interpolation=cv2.INTER_AREA) for f in fr]
    # an untrained model is not confident: fixed low thresholds so the worker really writes samples
    cfg = CollectConfig.model_validate({
        "thresholds": {"value": 0.0}, "min_confident_fraction": 0.0, "max_mean_entropy": 1.0, "min_blur_var": 0.0,
        "min_interval_s": 0.0, "stability": {"frames": 3, "max_flip_rate": 1.0}, "dedup": {"max_hamming": 2},
        "storage": {"image_format": "jpg", "max_samples": 50, "save_confidence": True}})
    for _ in range(3):
        backend.infer(fr_in[0][None])
    res = {"command": "python bench/collect_overhead.py " + " ".join(sys.argv[1:]), "arch": args.arch,
           "input": args.size, "frame": args.frame_size, "device": args.device,
           "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "without": [], "with": [], "collector": []}
    tmp = Path(tempfile.mkdtemp(prefix="pipa-collect-bench-"))
    try:
        for r in range(args.rounds):
            res["without"].append(loop(backend, fr_in, fr, None, args.repeats))
            col = Collector(tmp / f"c{r}", cfg, CITYSCAPES19, {"backend": "torch"})
            res["with"].append(loop(backend, fr_in, fr, col, args.repeats))
            res["collector"].append(col.close())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fps_wo = float(np.mean([x["fps"] for x in res["without"]]))
    fps_w = float(np.mean([x["fps"] for x in res["with"]]))
    res["fps_without"], res["fps_with"] = fps_wo, fps_w
    res["fps_change_percent"] = 100 * (fps_w / fps_wo - 1)
    print(f"| {args.device} {args.arch} {args.size[0]}x{args.size[1]} | FPS without | FPS with | change | "
          f"offer ms median/max | saved | dropped |")
    print("|---|---|---|---|---|---|---|")
    print(f"| | {fps_wo:.1f} | {fps_w:.1f} | {res['fps_change_percent']:+.1f}% | "
          f"{np.mean([x['offer_ms_median'] for x in res['with']]):.3f}/{max(x['offer_ms_max'] for x in res['with']):.2f} | "
          f"{sum(c['saved'] for c in res['collector'])} | {sum(c['dropped'] for c in res['collector'])} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
