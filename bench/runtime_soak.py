"""Runtime soak: 10,000 frames through the whole pipeline; RSS growth < 20 MB, no fd growth.

    OMP_NUM_THREADS=1 .venv/bin/python bench/runtime_soak.py [--frames 10000] [--model palette|torch]

``test://`` (the synthetic scene) → model → temporal filter → overlay → H.264 mkv in a temp
folder. A sampler records RSS and open file descriptors; the baseline is taken after a warm-up
(``--warmup`` frames: the scene cache, allocator pools and GStreamer plugins are then loaded) and
compared with the end of the run and with the process after the run has closed everything.
Writes docs/results/runtime_soak.json. The 300-frame version is tests/test_runtime_live.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def n_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=1_000)
    ap.add_argument("--model", choices=("torch", "palette"), default="torch",
                    help="torch: untrained lraspp-mbv3 at 64x128 (small real network); palette: model-free")
    ap.add_argument("--source", default="test://?width=256&height=128")
    ap.add_argument("--json", default=str(REPO / "docs" / "results" / "runtime_soak.json"))
    args = ap.parse_args(argv)

    from pipa_edge.runtime import run_stream
    from pipa_edge.runtime.toy import PaletteBackend

    if args.model == "torch":
        import torch

        from pipa_edge.data.classes import SYNTH11
        from pipa_edge.models.zoo import build_segmenter
        from pipa_edge.runtime.backends.torch_backend import TorchBackend

        torch.set_num_threads(1)
        backend = TorchBackend(segmenter=build_segmenter("lraspp-mbv3", SYNTH11).eval(), input_size=(64, 128),
                               output_resolution="model")
    else:
        backend = PaletteBackend(input_size=(64, 128))
    done = {"n": 0}
    samples: list[tuple[int, float, float, int]] = []
    stop = threading.Event()

    def on_frame(_f, _labels):
        done["n"] += 1

    def sampler():
        while not stop.wait(0.5):
            samples.append((done["n"], time.monotonic(), rss_mb(), n_fds()))

    rss_before, fds_before = rss_mb(), n_fds()
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        s = run_stream(args.source, str(Path(tmp) / "soak.mkv"), backend, max_frames=args.frames, on_frame=on_frame,
                       log_stats=False)
    stop.set()
    th.join()
    rss_after, fds_after = rss_mb(), n_fds()
    base = next((x for x in samples if x[0] >= args.warmup), samples[0] if samples else None)
    end = samples[-1] if samples else None
    peak_rss = max((x[2] for x in samples if base and x[0] >= base[0]), default=float("nan"))
    growth = (end[2] - base[2]) if base and end else float("nan")
    res = {"command": "python bench/runtime_soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "backend": backend.describe(),
           "source": args.source, "frames": s.frames, "fps": s.fps, "wall_s": round(time.monotonic() - t0, 1),
           "rss_mb_before_run": rss_before, "rss_mb_at_warmup": base[2] if base else None,
           "rss_mb_end_of_run": end[2] if end else None, "rss_mb_peak_after_warmup": peak_rss,
           "rss_mb_after_close": rss_after, "rss_growth_mb": growth, "fds_before_run": fds_before,
           "fds_at_warmup": base[3] if base else None, "fds_end_of_run": end[3] if end else None,
           "fds_after_close": fds_after, "dropped": s.dropped, "corrupt": s.corrupt,
           "pass_rss": growth < 20.0, "pass_fds": (end[3] <= base[3] if base and end else False)
           and fds_after <= fds_before + 0,
           "samples_every_500ms": [list(x[:1]) + [round(x[2], 1), x[3]] for x in samples[:: max(1, len(samples) // 40)]]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"soak: {s.frames} frames in {res['wall_s']} s ({s.fps:.1f} fps) with {backend.describe()}")
    print(f"  RSS  warm-up {res['rss_mb_at_warmup']:.1f} MB → end {res['rss_mb_end_of_run']:.1f} MB "
          f"(growth {growth:+.1f} MB, peak {peak_rss:.1f}; target < 20 MB) {'PASS' if res['pass_rss'] else 'FAIL'}")
    print(f"  fds  before {fds_before}, warm-up {res['fds_at_warmup']}, end {res['fds_end_of_run']}, "
          f"after close {fds_after} {'PASS' if res['pass_fds'] else 'FAIL'}")
    print(f"wrote {args.json}")
    return 0 if res["pass_rss"] and res["pass_fds"] else 1


if __name__ == "__main__":
    sys.exit(main())
