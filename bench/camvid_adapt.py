#!/usr/bin/env python3
"""CamVid day → dusk adaptation: the held-out protocol (default) and the earlier transductive table.

``--protocol heldout`` (issue 22): every adaptation row adapts on the images of one half of the 31
``dusk_train`` frames and is scored on the other half (2 folds, contiguous halves of the sequence,
:mod:`pipa_edge.data.folds`; both folds' confusion matrices pooled, so every frame is scored once,
by a model that never saw it), per seed, on top of the strong source model of the same seed
(``train/camvid_source_only.yaml``, trained on all of day_train). Second column: the transductive
score (each fold's model on its own adaptation half, pooled). Rows: strong source-only, AdaBN
(precise BN of the source model on the fold's target images), mean teacher, PiPa++ (recipes as
written; their precise BN is done here at the scoring size on the fold's target images), optional
distillation from an adapted B1 (``--distill segformer-b1``), the oracle (day + the adaptation half's
dusk labels, same folds). Every model is scored at ``--eval-size H W`` (held-out default 192×256, the
size the CamVid recipes score and deploy at, chosen on day folds), labels at native resolution. The row with
the best held-out mean is the recommended recipe (printed with per-seed differences and spread).

    OMP_NUM_THREADS=1 python bench/camvid_adapt.py --parallel 2 --threads 1 --reuse \
        --json docs/results/camvid_heldout.json        # whole protocol (400 adaptation steps, 192x256)
    python bench/camvid_adapt.py --smoke --out runs/heldout_smoke                            # minutes, end to end
    python bench/camvid_adapt.py --plan                       # jobs + CPU-time estimate, nothing run

``--protocol legacy``: the earlier table (all rows adapted and scored on all 31 frames, rows pinned to
the settings they were first measured with):

    python bench/camvid_adapt.py --protocol legacy --data ../shared/data/camvid --json docs/results/camvid_adapt.json
    python bench/camvid_adapt.py --protocol legacy --variant 'mt_nofda:mean_teacher:adapt.mix.source_style=none' ...

Jobs run as subprocesses, ``--parallel`` at a time (several share one GPU well at this size).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import camvid_protocol as P  # noqa: E402
from camvid_extras import build_parser, synth_table, timing  # noqa: E402,F401

SRC = "train/camvid_source_only.yaml"
MT = "train/camvid_day2dusk_mean_teacher.yaml"
PIPA = "train/camvid_day2dusk_pipa.yaml"
# The recipes in train/ carry the class-balanced pseudo-labels (and, for PiPa++, aux_bn_update: false)
# since 2026-12-04; the table's rows keep the settings they were first measured with, so each row
# name means one configuration across sessions (the class-balanced rows are the variants below).
# PRECISE_BN_NOTE: the adaptation recipes re-estimate BN statistics on whole dusk images at the end
# (precise_bn, since 2026-12-05); every job here pins it off, so a row keeps meaning what it measured;
# the precise-BN numbers come from bench/bn_scale.py on the same checkpoints (docs/what_we_tried.md).
# The source recipe gained photometric augmentation, scale 0.75-1.5 and class-balanced CE (issue 22) and the
# adaptation recipes the same source-branch settings: the legacy rows pin the earlier ones.
LEGACY = ["transform.brightness=0", "transform.contrast=0", "transform.saturation=0", "transform.hue=0",
          "transform.gamma=0", "transform.blur_prob=0", "transform.noise_std=0", "transform.scale_range=[0.75,1.25]",
          "loss.class_weights=none", "target_transform=null"]
V1_PL = ["adapt.pseudo_label.quality_weight=true", "adapt.pseudo_label.class_quantile=null"]
V1_PIPA = V1_PL + ["adapt.aux_bn_update=true"]
# row name -> (method, recipe, overrides)
ROWS = {
    "source_only": ("source_only", SRC, []),
    "mean_teacher": ("mean_teacher", MT, V1_PL),
    "pixel": ("pipa", PIPA, V1_PIPA + ["adapt.patch_contrast.enabled=false", "adapt.sampler.kind=random"]),
    "pixel_patch": ("pipa", PIPA, V1_PIPA + ["adapt.sampler.kind=random"]),
    "pipa": ("pipa", PIPA, V1_PIPA),
}
LABELS = {"source_only": "source-only", "mean_teacher": "mean teacher", "pixel": "+ pixel contrast",
          "pixel_patch": "+ patch contrast", "pipa": "+ task-smart sampling (PiPa++)", "oracle": "oracle (2-fold)",
          "source_only_b1": "source-only, SegFormer-B1", "pipa_b1": "PiPa++ SegFormer-B1 (KD teacher)",
          "pipa_distill_b1": "PiPa++ B0 + distil PiPa++ B1",
          "mt_distill_b1": "mean teacher B0 (class-balanced) + distil PiPa++ B1",
          "pipa_srcpix": "PiPa++, pixel anchors source-only",
          "pipa_cbst": "PiPa++, class-balanced pseudo-labels (hard mask, per-class median)",
          "mt_cbst": "mean teacher, class-balanced pseudo-labels (hard mask, per-class median)",
          "pipa_cbst_w0": "PiPa++, class-balanced, contrastive weights 0 (control: terms computed, no gradient)",
          "pipa_cbst_nopatch": "PiPa++, class-balanced, without the patch term (pixel + task-smart)",
          "pipa_cbst_bnfix": "PiPa++, class-balanced, patch views leave BN running stats alone",
          "pipa_cbst_bnfix_w05": "PiPa++ recipe, contrastive weights 0.5 (instead of 0.1)",
          "pipa_cbst_bnfix_rand": "PiPa++ recipe, random sampler (instead of task-smart)",
          "pipa_cbst_bnfix_pur08": "PiPa++ recipe, pixel-contrast cells >= 80 % one class (no boundary anchors)",
          "pipa_cbst_bnfix_t02": "PiPa++ recipe, contrast temperature 0.2 (instead of 0.1)",
          "pipa_cbst_bnfix_wu200": "PiPa++ recipe, contrastive terms off for 200 iterations, ramped in over 200",
          "pipa_cbst_bnfix_pixrand": "+ pixel contrast (recipe settings: patch off, random sampler)",
          "pipa_cbst_bnfix_nopatch": "PiPa++ recipe without the patch term (pixel + task-smart)"}


def _ds(root, split):
    return {"type": "camvid", "root": str(root), "split": split, "resize": [180, 240]}


def job_overrides(job: dict) -> list[str]:
    """The recipe overrides of one job: the bench's own settings, then the row's / variant's (which win)."""
    data, out = Path(job["data"]), Path(job["out"])
    ov = [f"seed={job['seed']}", f"out_dir={out}", "val=null", f"device={job['device']}",
          f"num_workers={job['workers']}", f"optim.max_iters={job['iters']}",
          "precise_bn.enabled=false"] + LEGACY  # rows as first measured; a variant may set it (PRECISE_BN_NOTE)
    if job["name"] == "oracle":
        ov += [f"source.root={job['oracle_root']}", f"source.split=fold{job['fold']}_train"]
    else:
        ov += [f"source.root={data}"]
        if job["method"] != "source_only":
            ov += [f"target.root={data}", f"init_from={job['init_from']}"]
    return ov + list(job["overrides"])


def run_job(job: dict) -> dict:
    """Train one row/seed with the trainer, then score the final model (called in a subprocess)."""
    import torch

    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.evaluate import evaluate
    from pipa_edge.train.trainer import train

    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    data = Path(job["data"])
    if job["name"] == "oracle":
        evals = {"dusk": _ds(job["oracle_root"], f"fold{job['fold']}_test")}
    else:
        evals = {"dusk": _ds(data, "dusk_train"), "day": _ds(data, "day_train")}
    cfg = load_train_config(REPO / job["recipe"], job_overrides(job))
    t0 = time.perf_counter()
    res = train(cfg)
    train_s = time.perf_counter() - t0
    seg = load_segmenter(res.checkpoint)
    dev = torch.device("cuda" if job["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    seg.to(dev)
    scores = {}
    for k, d in evals.items():
        s = evaluate(seg, build_eval_dataset(d), cfg.eval, dev, show_progress=False)
        scores[k] = {"miou": s["miou"], "per_class_iou": s["per_class_iou"], "confusion_matrix": s["confusion_matrix"]}
    last = {}
    csv = Path(res.out_dir) / "scalars.csv"
    if csv.is_file():
        last = {"scalars_tail": csv.read_text().splitlines()[-3:]}
    return {**job, "train_s": train_s, "scores": scores, "checkpoint": str(res.checkpoint), **last}


def make_oracle_data(data: Path, root: Path) -> None:
    """Symlink day_train + one half of dusk_train (fold k train) and the other half (fold k test)."""
    dusk = sorted((data / "dusk_train" / "images").iterdir())
    day = sorted((data / "day_train" / "images").iterdir())
    halves = [dusk[: (len(dusk) + 1) // 2], dusk[(len(dusk) + 1) // 2:]]
    for k in range(2):
        for split, files in ((f"fold{k}_train", day + halves[1 - k]), (f"fold{k}_test", halves[k])):
            for sub in ("images", "labels"):
                d = root / split / sub
                d.mkdir(parents=True, exist_ok=True)
                for f in files:
                    src = f if sub == "images" else f.parent.parent / "labels" / f.name
                    link = d / f.name
                    if not link.exists():
                        link.symlink_to(src.resolve())


def build_jobs(a) -> list[dict]:
    base = {"data": str(Path(a.data).resolve()), "device": a.device, "workers": a.workers, "threads": a.threads}
    jobs = []
    out = Path(a.out)

    def add(name, method, recipe, overrides, seed, iters, dep=None):
        j = {**base, "name": name, "method": method, "recipe": recipe, "overrides": list(overrides) + list(a.set),
             "seed": seed, "iters": iters, "out": str(out / f"{name}_s{seed}"), "dep": dep}
        if dep:  # the first dependency is the init checkpoint; the others must finish first
            j["init_from"] = str(out / (dep if isinstance(dep, str) else dep[0]) / "final.pt")
        jobs.append(j)

    for r in a.rows:
        if r == "source_only":
            continue
        m, rec, ov = ROWS[r]
        for s in (a.seeds if r in a.multi_seed else [0]):
            add(r, m, rec, ov, s, a.adapt_iters, f"source_only_s{s}")
    for v in a.variant:  # NAME:BASE_ROW:key=v,key=v  (seed 0 only unless NAME ends with '*')
        name, base_row, sets = (v.split(":", 2) + [""])[:3]
        m, rec, ov = ROWS[base_row]
        seeds = a.seeds if name.endswith("*") else [0]
        for s in seeds:
            add(name.rstrip("*"), m, rec, ov + [x for x in sets.split(",") if x], s, a.adapt_iters, f"source_only_s{s}")
    if a.distill:  # a larger adapted teacher (PiPa++ on `a.distill`) distilled into the B0 PiPa++ student
        tag = a.distill.replace("segformer-", "")
        arch = [f"model.arch={a.distill}"]
        for s in (a.seeds if "pipa" in a.multi_seed else [0]):
            jobs.append({**base, "name": f"source_only_{tag}", "method": "source_only", "recipe": SRC,
                         "overrides": arch, "seed": s, "iters": a.src_iters,
                         "out": str(out / f"source_only_{tag}_s{s}"), "dep": None})
            kd = list(a.distill_set)  # the PiPa++ recipe as it is (+ these) for the B1 teacher and the B0 student
            add(f"pipa_{tag}", "pipa", PIPA, kd + arch, s, a.adapt_iters, f"source_only_{tag}_s{s}")
            teacher = out / f"pipa_{tag}_s{s}" / "final.pt"
            add(f"pipa_distill_{tag}", "pipa", PIPA, kd + [
                "adapt.distill.enabled=true", f"adapt.distill.teacher_checkpoint={teacher}"], s, a.adapt_iters,
                [f"source_only_s{s}", f"pipa_{tag}_s{s}"])
    # the B0 source models go first: those of --seeds and of any seed a row needs
    needed = {int(d.rsplit("_s", 1)[1]) for j in jobs for d in _deps(j) if d.startswith("source_only_s")}
    jobs[:0] = [{**base, "name": "source_only", "method": "source_only", "recipe": SRC, "overrides": [],
                 "seed": s, "iters": a.src_iters, "out": str(out / f"source_only_s{s}"), "dep": None}
                for s in sorted(set(a.seeds) | needed)]
    if a.oracle:
        root = out / "oracle_data"
        make_oracle_data(Path(a.data), root)
        for k in range(2):
            jobs.append({**base, "name": "oracle", "method": "source_only", "recipe": SRC, "overrides": list(a.set_oracle),
                         "seed": 0, "fold": k, "iters": a.src_iters, "out": str(out / f"oracle_f{k}"), "dep": None,
                         "oracle_root": str(root)})
    return jobs


def _deps(job: dict) -> list[str]:
    """Tags a job waits for (``dep``: None, one tag, or a list whose first entry is the init)."""
    return P.deps(job)


def run_all(jobs: list[dict], parallel: int, out: Path, reuse: bool = False) -> list[dict]:
    return P.run_all(jobs, parallel, out, reuse, script=__file__)


def _miou_of_cms(cms) -> float:
    import numpy as np

    from pipa_edge.metrics import mean_iou

    return float(mean_iou(np.sum([np.asarray(c) for c in cms], axis=0), "gt"))


def summarize(results: list[dict]) -> list[dict]:
    import numpy as np

    rows: dict[str, list[dict]] = {}
    for r in results:
        rows.setdefault(r["name"], []).append(r)
    table = []
    order = ["source_only", "mean_teacher", "pixel", "pixel_patch", "pipa"]
    names = [n for n in order if n in rows] + sorted(n for n in rows if n not in order and n != "oracle")
    for n in names:
        rs = sorted(rows[n], key=lambda r: r["seed"])
        dusk = [100 * r["scores"]["dusk"]["miou"] for r in rs]
        day = [100 * r["scores"]["day"]["miou"] for r in rs]
        table.append({"row": n, "label": LABELS.get(n, n), "method": rs[0]["method"], "seeds": [r["seed"] for r in rs],
                      "overrides": rs[0]["overrides"], "dusk_miou": dusk, "dusk_mean": float(np.mean(dusk)),
                      "dusk_std": float(np.std(dusk, ddof=1)) if len(dusk) > 1 else None,
                      "day_mean": float(np.mean(day)), "train_s": [round(r["train_s"], 1) for r in rs]})
    if "oracle" in rows:
        rs = sorted(rows["oracle"], key=lambda r: r["fold"])
        pooled = 100 * _miou_of_cms([r["scores"]["dusk"]["confusion_matrix"] for r in rs])
        table.append({"row": "oracle", "label": LABELS["oracle"], "method": "source_only (day + dusk labels)",
                      "seeds": [0], "folds": [100 * r["scores"]["dusk"]["miou"] for r in rs], "dusk_miou": [pooled],
                      "dusk_mean": pooled, "dusk_std": None, "day_mean": None,
                      "train_s": [round(r["train_s"], 1) for r in rs]})
    return table


def merge_previous(results: list[dict], prev: dict, source: str) -> list[dict]:
    """``results`` plus the runs of an earlier summary JSON (``prev``) whose (row, seed) is not in
    ``results`` — for tables built over several sessions whose result files are gone. A merged run
    without its own day score (older summaries) gets its row's day mean; oracle folds are not merged."""
    have = {(r["name"], r["seed"]) for r in results}
    rows = {t["row"]: t for t in prev.get("table", [])}
    out = list(results)
    for r in prev.get("runs", []):
        if (r["name"], r["seed"]) in have or r["name"] == "oracle":
            continue
        row = rows.get(r["name"], {})
        day = r.get("day_miou")
        if day is None:
            day = row["day_mean"] / 100 if row.get("day_mean") is not None else float("nan")
        out.append({"name": r["name"], "seed": r["seed"], "method": r.get("method", row.get("method", "?")),
                    "train_s": r.get("train_s", float("nan")), "overrides": r.get("overrides", []),
                    "merged_from": r.get("merged_from", source),
                    "scores": {"dusk": {"miou": r["dusk_miou"], "per_class_iou": r["per_class_dusk"],
                                        "confusion_matrix": r["confusion_dusk"]}, "day": {"miou": day}}})
    return out


def print_table(table: list[dict]) -> None:
    print(f"{'row':34s} {'dusk mIoU':>16s} {'seeds':>8s} {'day mIoU':>9s} {'train s/run':>11s}")
    for t in table:
        sd = f" ± {t['dusk_std']:.1f}" if t["dusk_std"] is not None else ""
        day = f"{t['day_mean']:.1f}" if t["day_mean"] is not None else "-"
        print(f"{t['label'][:34]:34s} {t['dusk_mean']:>9.1f}{sd:7s} {len(t['seeds']):>8d} {day:>9s} "
              f"{sum(t['train_s']) / len(t['train_s']):>11.0f}")


def _parser():
    return build_parser(__doc__.split("\n\n")[0], list(P.LADDER), list(ROWS))


def _defaults(a) -> None:
    heldout = a.protocol == "heldout"
    a.out = a.out or ("runs/camvid_heldout_smoke" if a.smoke else "runs/camvid_heldout" if heldout else "runs/camvid_adapt")
    a.seeds = a.seeds if a.seeds is not None else ([0] if a.smoke else [0, 1, 2])
    a.rows = a.rows if a.rows is not None else list(P.LADDER if heldout else ROWS)
    for k in ("src_iters", "adapt_iters"):
        if getattr(a, k) is None:  # held-out adaptation: 400 steps, as train/camvid_day2dusk_*.yaml
            full = 400 if heldout and k == "adapt_iters" else 600
            setattr(a, k, a.iters if a.iters is not None else (3 if a.smoke else full))
    if heldout and not a.eval_size:
        a.eval_size = [[192, 256]]  # the protocol's size, chosen on day folds (docs/adapt.md)


def _command(argv) -> str:
    return "python " + " ".join([sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))


def heldout_main(a, argv) -> int:
    """The held-out protocol end to end: jobs → runs (or --summarize DIR) → table → decision → JSON."""
    t0 = time.perf_counter()
    jobs = P.heldout_jobs(a) if not a.summarize else []
    if a.plan:
        for j in jobs:
            print(f"{Path(j['out']).name:28s} {j['method']:14s} after {','.join(P.deps(j)) or '-'}")
        cpu = P.cpu_minutes(jobs, a.src_iters, a.adapt_iters)
        print(f"{len(jobs)} jobs, about {cpu / 60:.1f} CPU-hours at 1 thread (unloaded core; scoring not counted); "
              f"{cpu / 60 / max(1, a.parallel):.1f} h wall with --parallel {a.parallel}")
        return 0
    if a.summarize:
        results = [json.loads(p.read_text()) for p in sorted(Path(a.summarize).glob("result_*.json"))]
        results = [r for r in results if r.get("protocol") == "heldout"]
        if a.merge:
            results = P.merge_heldout(results, json.loads(Path(a.merge).read_text()), a.merge)
    else:
        results = P.run_all(jobs, a.parallel, Path(a.out), a.reuse, script=__file__)
    sizes = sorted({k for r in results for k in r["scores"]})
    tables, decisions = {}, {}
    for size in sizes:
        tables[size] = P.heldout_table([r for r in results if size in r["scores"]], size)
        decisions[size] = P.decide(tables[size])
        P.print_heldout(tables[size], decisions[size], size)
    wall = round(time.perf_counter() - t0, 1)
    print(f"\n[bench] {len(results)} runs, wall {wall} s")
    if a.json:
        info = {"command": _command(argv), "protocol": "heldout", "wall_s": wall, "tables": tables,
                "decisions": decisions,
                "runs": [{k: r.get(k) for k in ("name", "seed", "fold", "method", "train_s", "overrides", "scores")}
                         | ({"merged_from": r["merged_from"]} if r.get("merged_from") else {}) for r in results]}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(info, indent=1))
        print(f"[bench] wrote {a.json}")
    return 0


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    if a.job:
        job = json.loads(Path(a.job).read_text())
        if job.get("protocol"):
            return P.job_main(a.job)
        res = run_job(job)
        Path(a.job).with_name(Path(a.job).name.replace("job_", "result_")).write_text(json.dumps(res))
        return 0
    if a.summarize and a.protocol == "heldout":  # a legacy folder (no heldout results) is tabulated as legacy
        if not any(json.loads(p.read_text()).get("protocol") == "heldout"
                   for p in Path(a.summarize).glob("result_*.json")):
            a.protocol = "legacy"
    _defaults(a)
    if a.protocol == "heldout" and not (a.synth or a.timing_only):
        return heldout_main(a, argv)
    return legacy_main(a, argv)


def legacy_main(a, argv) -> int:
    if a.synth:
        import torch

        rows = synth_table(a.synth_steps, (128, 128), 4, Path(a.out))
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
            Path(a.json).write_text(json.dumps({"command": cmd, "device": "cpu", "torch": torch.__version__,
                                                "steps": a.synth_steps, "batch": 4, "size": [128, 128], "rows": rows}, indent=1))
        return 0
    t0 = time.perf_counter()
    import torch

    dev = "cuda" if torch.cuda.is_available() and a.device != "cpu" else "cpu"
    timing_rows = timing(dev, 8, 30) if (a.timing or a.timing_only) else None
    if a.timing_only:
        results = []
    elif a.summarize:
        results = [json.loads(p.read_text()) for p in sorted(Path(a.summarize).glob("result_*.json"))]
        if a.merge:
            results = merge_previous(results, json.loads(Path(a.merge).read_text()), a.merge)
        if a.select:
            results = [r for r in results if r["name"] in a.select]
    else:
        results = run_all(build_jobs(a), a.parallel, Path(a.out), a.reuse)
    table = summarize(results)
    print_table(table)
    info = {"command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and a.device != "cpu" else "cpu",
            "torch": torch.__version__, "wall_s": round(time.perf_counter() - t0, 1), "table": table, "timing": timing_rows,
            "runs": [{k: r[k] for k in ("name", "seed", "method", "train_s", "overrides", "merged_from") if k in r} |
                     {"dusk_miou": r["scores"]["dusk"]["miou"], "day_miou": r["scores"]["day"]["miou"],
                      "per_class_dusk": r["scores"]["dusk"]["per_class_iou"],
                      "confusion_dusk": r["scores"]["dusk"]["confusion_matrix"]}
                     for r in results]}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(info, indent=1))
        print(f"[bench] wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
