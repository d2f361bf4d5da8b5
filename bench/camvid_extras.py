"""Parts of bench/camvid_adapt.py: its command line, training-step timing, the synthetic smoke table."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPA = "train/camvid_day2dusk_pipa.yaml"


def timing(device: str, batch: int, iters: int) -> list[dict]:
    """Step time and peak memory of mean teacher vs PiPa++ on the same batch (the recipes' adapt
    sections, SegFormer-B0, 160×224 crops), with the project's training-step benchmark."""
    from pipa_edge.adapt.config import AdaptConfig
    from pipa_edge.bench.train_step import bench_train_step
    from pipa_edge.config import read_yaml, validate

    cfg = validate(AdaptConfig, read_yaml(REPO / PIPA)["adapt"], where=PIPA)
    rows = bench_train_step("segformer-b0", ("mean_teacher", "pipa"), batch=batch, imgsz=(160, 224), iters=iters,
                            warmup=3, rounds=5, device=device, adapt_cfg=cfg)
    for r in rows:
        r.pop("samples_ms", None)
        print(f"[timing] {r['method']}: p50 {r['step_ms']['p50']:.1f} ms, x{r['p50_vs_first']:.2f}, "
              f"memory {r['memory']}")
    return rows


def synth_table(steps: int, size: tuple[int, int], batch: int, out: Path) -> list[dict]:
    """The same rows on the embedded synthetic sim→real generator, on one fixed batch: a smoke
    table (losses finite and decreasing), not a quality claim."""
    import numpy as np
    import torch

    from adapt_smoke import smoke_table  # bench/ is on sys.path (bench/camvid_adapt.py)
    from pipa_edge.data.synth import generate
    from pipa_edge.data.synth.dataset import SynthDataset
    from pipa_edge.models.zoo import build_segmenter

    generate(out / "synth", n_sim=batch, n_real=batch, size=size, progress=False, workers=1)
    sim, real = SynthDataset(out / "synth", "sim"), SynthDataset(out / "synth", "real", labels=False)
    img = lambda ds: torch.from_numpy(np.stack([ds[i]["image"] for i in range(batch)])).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    lab = torch.from_numpy(np.stack([sim[i]["label"] for i in range(batch)]).astype(np.int64))
    torch.manual_seed(0)
    seg = build_segmenter("segformer-b0", sim.classes)
    rows = smoke_table(seg, {"source": {"image": img(sim), "label": lab}, "target": {"image": img(real)}}, steps=steps,
                       base_cfg={"pseudo_label": {"threshold": 0.5}})
    print(f"{'row':14s} {'finite':>6s} {'loss first':>10s} {'loss last':>10s}  terms (first -> last)")
    for r in rows:
        terms = ", ".join(f"{k} {a:.3f}->{b:.3f}" for k, (a, b) in r["terms"].items() if k.startswith("loss_"))
        print(f"{r['row']:14s} {str(r['finite']):>6s} {r['loss_first']:>10.3f} {r['loss_last']:>10.3f}  {terms}")
    return rows


def build_parser(description: str, ladder: list[str], legacy_rows: list[str]) -> argparse.ArgumentParser:
    """The command line of bench/camvid_adapt.py (both protocols)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--protocol", choices=("heldout", "legacy"), default="heldout")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "camvid"))
    ap.add_argument("--out", default=None, help="run folder (default runs/camvid_heldout or runs/camvid_adapt)")
    ap.add_argument("--rows", nargs="*", default=None,
                    help=f"heldout: {' '.join(ladder)} (default all); legacy: {' '.join(legacy_rows)}")
    ap.add_argument("--multi-seed", nargs="*", default=["source_only", "mean_teacher", "pipa"], help="legacy only")
    ap.add_argument("--seeds", nargs="*", type=int, default=None, help="default 0 1 2 (--smoke: 0)")
    ap.add_argument("--variant", action="append", default=[], help="NAME:BASE_ROW:key=v,key=v (tuning rows)")
    ap.add_argument("--set", action="append", default=[], help="override for every run (legacy: but the oracle)")
    ap.add_argument("--set-oracle", action="append", default=[])
    ap.add_argument("--no-oracle", dest="oracle", action="store_false")
    ap.add_argument("--oracle-seeds", nargs="*", type=int, default=[0], help="heldout: seeds of the oracle")
    ap.add_argument("--distill", metavar="ARCH", default=None,
                    help="also train PiPa++ on ARCH (e.g. segformer-b1) and distil it into the B0 PiPa++ student "
                         "(rows source_only_<arch>, pipa_<arch>, pipa_distill_<arch>; seeds as the pipa row)")
    ap.add_argument("--distill-set", action="append", default=[], metavar="KEY=V",
                    help="with --distill: override for the PiPa++ runs of the teacher and the distilled student")
    ap.add_argument("--src-iters", type=int, default=None, help="default 600 (--smoke: 3)")
    ap.add_argument("--adapt-iters", type=int, default=None, help="default 600; held-out adaptation rows 400 (--smoke: 3)")
    ap.add_argument("--iters", type=int, default=None, help="sets both --src-iters and --adapt-iters")
    ap.add_argument("--smoke", action="store_true", help="heldout: 3 iterations, seed 0: proves the protocol end to end")
    ap.add_argument("--plan", action="store_true", help="heldout: print the jobs and the CPU-time estimate, run nothing")
    ap.add_argument("--eval-size", nargs=2, type=int, action="append", default=None, metavar=("H", "W"),
                    help="score at this size (repeatable; heldout default 192 256; legacy: each checkpoint's recorded size)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--timing", action="store_true", help="also time one training step: mean teacher vs PiPa++")
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep runs whose result_*.json exists in --out")
    ap.add_argument("--summarize", metavar="DIR", help="only tabulate the result_*.json files in DIR")
    ap.add_argument("--merge", metavar="JSON", default=None,
                    help="with --summarize: also keep the runs of this earlier summary that DIR does not have")
    ap.add_argument("--select", nargs="+", metavar="ROW", default=None,
                    help="with --summarize: only the runs of these rows (run names without the seed)")
    ap.add_argument("--synth", action="store_true", help="only the synthetic smoke table (CPU, minutes)")
    ap.add_argument("--synth-steps", type=int, default=20)
    return ap
