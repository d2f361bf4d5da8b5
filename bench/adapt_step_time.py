#!/usr/bin/env python3
"""Training-step time of mean teacher vs PiPa++ variants on the same batch, interleaved round by round.

Every variant is the CamVid recipe's ``adapt`` section (``train/camvid_day2dusk_pipa.yaml``) plus
overrides, one :class:`pipa_edge.bench.train_step.MethodRunner` each (a full trainer step:
``training_step`` → ``backward`` → optimiser step → EMA update) on one synthetic batch
(SegFormer-B0, batch 8 + 8, 160×224). One warm-up step each, then ``--rounds`` rounds in which
every variant runs one step; medians and ratios to the first variant.

    python bench/adapt_step_time.py --threads 2 --rounds 5 --json runs/adapt_step_time.json
    python bench/adapt_step_time.py --variant 'pipa_views4:pipa:patch_contrast.num_images=4'
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT = ["mean_teacher:mean_teacher:", "pipa_views8:pipa:patch_contrast.num_images=0",
           "pipa_views4:pipa:patch_contrast.num_images=4", "pipa_views2:pipa:patch_contrast.num_images=2"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", default=None, metavar="NAME:METHOD:key=v,key=v")
    ap.add_argument("--recipe", default="train/camvid_day2dusk_pipa.yaml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, nargs=2, default=[160, 224])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import torch

    from pipa_edge.adapt.config import AdaptConfig
    from pipa_edge.bench.latency import build_arch
    from pipa_edge.bench.train_step import MethodRunner, synthetic_batch
    from pipa_edge.config import apply_overrides, read_yaml, validate

    torch.set_num_threads(a.threads)
    base = read_yaml(REPO / a.recipe)["adapt"]
    seg = build_arch("segformer-b0", 0)
    batch = synthetic_batch(seg.classes, a.batch, tuple(a.imgsz), 0)
    runners = {}
    for spec in a.variant or DEFAULT:
        name, method, sets = (spec.split(":", 2) + ["", ""])[:3]
        cfg = validate(AdaptConfig, apply_overrides(copy.deepcopy(base), [x for x in sets.split(",") if x], "--variant"),
                       where=f"--variant {name}")
        torch.manual_seed(0)
        runners[name] = MethodRunner(method, seg, cfg, "cpu", 1e-3)
        runners[name].step(batch)  # warm-up
    for _ in range(a.rounds):
        for r in runners.values():
            r.samples.append(r.step(batch))
    first = statistics.median(next(iter(runners.values())).samples)
    rows = [{"variant": n, "method": r.name, "median_ms": statistics.median(r.samples),
             "ratio": statistics.median(r.samples) / first, "samples_ms": [round(v, 1) for v in r.samples]}
            for n, r in runners.items()]
    print(f"{'variant':16s} {'median ms':>10s} {'vs first':>9s}")
    for r in rows:
        print(f"{r['variant']:16s} {r['median_ms']:10.0f} {r['ratio']:8.2f}x")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"command": "python bench/adapt_step_time.py " + " ".join(sys.argv[1:]),
                                            "threads": a.threads, "batch": a.batch, "imgsz": a.imgsz,
                                            "torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
