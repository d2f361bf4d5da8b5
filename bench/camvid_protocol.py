"""Held-out protocol pieces shared by ``bench/camvid_adapt.py`` and ``bench/camvid_source_only.py``.

A *job* is a dict (JSON-able) run in its own subprocess (``SCRIPT --job job.json``): optionally
train one recipe with ``--set``-style overrides, optionally re-estimate BN statistics on unlabelled
images at the scoring size (precise BN / AdaBN), then score the model on named frame sets at one or
more sizes. Each score keeps its confusion matrix, so a row's mIoU pools the folds' matrices.

Frame sets are dataset specs with a ``fold`` (:mod:`pipa_edge.data.folds`: 2 contiguous halves per
sequence), loaded at native resolution: the image is resized to the scoring size (the size the
model is deployed at), the prediction upsampled to the native label (labels never resized), so
scores at different sizes are comparable.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FALLBACK_SIZE = (180, 240)  # when a checkpoint records no size (older files)


def camvid(root, split: str, fold: int | None = None, part: str = "heldout", resize=None, labels: bool = True) -> dict:
    """A CamVid dataset spec; ``fold``: one part of the 2-fold split of ``split``."""
    d = {"type": "camvid", "root": str(root), "split": split}
    if fold is not None:
        d["fold"] = {"k": 2, "index": int(fold), "part": part}
    if resize is not None:
        d["resize"] = [int(v) for v in resize]
    if not labels:
        d["labels"] = False
    return d


def flow(d: dict) -> str:
    """A dataset spec as a YAML flow mapping for ``--set key=...``."""
    return json.dumps(d)


def size_key(hw) -> str:
    return f"{int(hw[0])}x{int(hw[1])}"


def execute(job: dict) -> dict:
    """Run one job (in its subprocess): train (``job['train']``) or load ``job['init_from']``, then
    score ``job['scores']`` (name → dataset spec) at each of ``job['eval_sizes']`` (default: the
    checkpoint's recorded size), after precise BN on ``job['bn_images']`` when given."""
    import torch

    from pipa_edge.models.input_size import checkpoint_input_size
    from pipa_edge.models.io import load_segmenter

    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    t0 = time.perf_counter()
    if job.get("train", True):
        from pipa_edge.train.config import load_train_config
        from pipa_edge.train.trainer import train

        cfg = load_train_config(REPO / job["recipe"], job["overrides"])
        ckpt = str(train(cfg).checkpoint)
    else:
        ckpt = job["init_from"]
    train_s = time.perf_counter() - t0
    dev = torch.device("cuda" if job.get("device") != "cpu" and torch.cuda.is_available() else "cpu")
    seg = load_segmenter(ckpt).to(dev)
    sizes = job.get("eval_sizes") or [list(checkpoint_input_size(ckpt)[0] or FALLBACK_SIZE)]
    scores = {size_key(hw): score_model(seg, job, tuple(hw), dev) for hw in sizes}
    return {**job, "train_s": train_s, "scores": scores, "checkpoint": ckpt}


def score_model(seg, job: dict, hw: tuple[int, int], dev) -> dict:
    """``{name: {miou, images, confusion_matrix}}`` of ``seg`` (BN re-estimated first on
    ``job['bn_images']`` at ``hw`` when given; on a copy, so every size starts from the same weights)."""
    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.train.config import EvalConfig
    from pipa_edge.train.evaluate import evaluate

    model = seg
    if job.get("bn_images"):
        from pipa_edge.train.precise_bn import precise_bn_images, recompute_bn_stats

        model = copy.deepcopy(seg)
        ds = build_eval_dataset({**job["bn_images"], "labels": False}, resize=hw)
        num, bs = int(job.get("bn_num_images", 200)), int(job.get("bn_batch_size", 8))
        recompute_bn_stats(model, precise_bn_images(ds, num, bs, dev))
    out = {}
    for name, spec in job["scores"].items():
        s = evaluate(model, build_eval_dataset(spec, resize=hw, resize_label=False), EvalConfig(), dev,
                     show_progress=False)
        out[name] = {"miou": s["miou"], "images": s["images"], "confusion_matrix": s["confusion_matrix"]}
    return out


def deps(job: dict) -> list[str]:
    """Tags a job waits for (``dep``: None, one tag, or a list whose first entry is the init)."""
    d = job.get("dep")
    return [d] if isinstance(d, str) else list(d or [])


def run_all(jobs: list[dict], parallel: int, out: Path, reuse: bool, script: str) -> list[dict]:
    """Run ``jobs`` as ``python SCRIPT --job FILE`` subprocesses, ``parallel`` at a time, each after
    its dependencies; a failed job's dependants are dropped. With ``reuse``, a job whose
    ``result_<tag>.json`` exists is not run again."""
    out.mkdir(parents=True, exist_ok=True)
    pending, running, done, results = list(jobs), {}, set(), []
    while pending or running:
        for j in list(pending):
            if len(running) >= parallel:
                break
            if any(d not in done for d in deps(j)):
                continue
            tag = Path(j["out"]).name
            old = out / f"result_{tag}.json"
            if reuse and old.is_file():  # finished earlier (e.g. the source checkpoints): keep it
                results.append(json.loads(old.read_text()))
                done.add(tag)
                pending.remove(j)
                continue
            jf = out / f"job_{tag}.json"
            jf.write_text(json.dumps(j))
            log = open(out / f"job_{tag}.log", "w")
            env = {**os.environ, "PIPA_NO_PROGRESS": "1", "OMP_NUM_THREADS": str(j["threads"])}
            running[tag] = (subprocess.Popen([sys.executable, script, "--job", str(jf)], stdout=log,
                                             stderr=subprocess.STDOUT, env=env), j, time.perf_counter())
            pending.remove(j)
            print(f"[bench] start {tag}", flush=True)
        time.sleep(0.5)
        for tag, (p, j, t0) in list(running.items()):
            if p.poll() is None:
                continue
            del running[tag]
            rf = out / f"result_{tag}.json"
            if p.returncode == 0 and rf.is_file():
                results.append(json.loads(rf.read_text()))
                done.add(tag)
                print(f"[bench] done {tag} in {time.perf_counter() - t0:.0f}s", flush=True)
            else:
                print(f"[bench] FAILED {tag} (rc {p.returncode}); log: {out / f'job_{tag}.log'}", flush=True)
                print("\n".join((out / f"job_{tag}.log").read_text().splitlines()[-15:]), flush=True)
                pending = [q for q in pending if tag not in deps(q)]
    return results


def job_main(job_file: str) -> int:
    """``--job FILE``: run it and write ``result_<tag>.json`` beside it."""
    job = json.loads(Path(job_file).read_text())
    res = execute(job)
    Path(job_file).with_name(Path(job_file).name.replace("job_", "result_")).write_text(json.dumps(res))
    return 0


def pooled_miou(cms) -> float:
    """mIoU (%) of the sum of confusion matrices (classes present in the GT)."""
    import numpy as np

    from pipa_edge.metrics import mean_iou

    return 100 * float(mean_iou(np.sum([np.asarray(c) for c in cms], axis=0), "gt"))


def mean_sd(xs: list[float]) -> tuple[float, float | None]:
    import numpy as np

    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None)


def fmt(m: float, sd: float | None) -> str:
    return f"{m:5.1f}" + (f" ± {sd:3.1f}" if sd is not None else "      ")


# --- the held-out dusk protocol (bench/camvid_adapt.py --protocol heldout) -----------------------------
SRC = "train/camvid_source_only.yaml"
MT = "train/camvid_day2dusk_mean_teacher.yaml"
PIPA = "train/camvid_day2dusk_pipa.yaml"
# the ladder: row -> (method, recipe, overrides); "adabn" trains nothing (BN statistics only)
LADDER = {"adabn": ("bn_only", SRC, []), "mean_teacher": ("mean_teacher", MT, []), "pipa": ("pipa", PIPA, [])}
LABELS = {"source": "strong source-only", "adabn": "AdaBN (precise BN on target images)",
          "mean_teacher": "mean teacher", "pipa": "PiPa++ (pixel + patch + task-smart)",
          "pipa_distill_b1": "PiPa++ B0 + distil adapted B1", "oracle": "oracle (day + dusk labels)"}
# CPU minutes of one 600-iteration run at 1 thread on an unloaded core (docs/benchmarks.md); B1 rows: 11 + 33
MINUTES = {"source_only": 13, "mean_teacher": 30, "pipa": 40, "bn_only": 1, "source_only_b1": 11, "pipa_b1": 33,
           "pipa_distill": 40}


def _recipe_pbn(recipe: str, overrides: list[str]) -> tuple[bool, int, int]:
    from pipa_edge.train.config import load_train_config

    pb = load_train_config(REPO / recipe, overrides).precise_bn
    return pb.enabled and pb.images == "target", pb.num_images, pb.batch_size


def heldout_jobs(a) -> list[dict]:
    """Jobs of the held-out protocol (see bench/camvid_adapt.py). ``a``: its parsed arguments."""
    data, out = Path(a.data).resolve(), Path(a.out)
    base = {"protocol": "heldout", "data": str(data), "device": a.device, "threads": a.threads,
            "eval_sizes": a.eval_size}
    extra = list(a.set) + (["optim.warmup_iters=1"] if a.smoke else [])

    def common(seed, tag, iters):
        return [f"seed={seed}", f"out_dir={out / tag}", "val=null", f"device={a.device}", f"num_workers={a.workers}",
                f"optim.max_iters={iters}", "precise_bn.enabled=false", f"source.root={data}"]

    def fold_scores(k):
        return {"heldout": camvid(data, "dusk_train", k, "heldout"), "transductive": camvid(data, "dusk_train", k, "train")}

    jobs = []
    for s in a.seeds:
        tag = f"source_s{s}"
        jobs.append({**base, "name": "source", "method": "source_only", "recipe": SRC, "seed": s, "fold": None,
                     "overrides": common(s, tag, a.src_iters) + extra, "out": str(out / tag), "dep": None,
                     "scores": {"all": camvid(data, "dusk_train")}})
    rows = [(r, *LADDER[r]) for r in a.rows]
    for v in a.variant:  # NAME:BASE_ROW:key=v,key=v
        name, base_row, sets = (v.split(":", 2) + [""])[:3]
        m, rec, ov = LADDER[base_row]
        rows.append((name, m, rec, ov + [x for x in sets.split(",") if x]))
    if a.distill:
        rows.append((f"pipa_distill_{a.distill.replace('segformer-', '')}", "pipa_distill", PIPA, list(a.distill_set)))
    for s in a.seeds:
        src_ck = str(out / f"source_s{s}" / "final.pt")
        for name, method, recipe, ov in rows:
            for k in (0, 1):
                jobs += _fold_jobs(a, base, common, fold_scores(k), name, method, recipe, ov + extra, s, k, src_ck, out, data)
    if a.oracle:
        if not getattr(a, "plan", False):
            make_oracle_data(data, out / "oracle_data")
        for s in a.oracle_seeds:
            for k in (0, 1):
                tag = f"oracle_f{k}_s{s}"
                ov = common(s, tag, a.src_iters) + [f"source.root={out / 'oracle_data'}", f"source.split=fold{k}_train"]
                jobs.append({**base, "name": "oracle", "method": "source_only", "recipe": SRC, "seed": s, "fold": k,
                             "overrides": ov + extra, "out": str(out / tag), "dep": None,
                             "scores": {"heldout": camvid(data, "dusk_train", k, "heldout")}})
    return jobs


def _fold_jobs(a, base, common, scores, name, method, recipe, ov, s, k, src_ck, out, data) -> list[dict]:
    """The job(s) of one ladder row on fold ``k`` of seed ``s`` (distillation: the B1 chain first)."""
    tag = f"{name}_f{k}_s{s}"
    target = [f"target.root={data}", "target.fold=" + flow({"k": 2, "index": k, "part": "train"})]
    bn = camvid(data, "dusk_train", k, "train", labels=False)
    job = {**base, "name": name, "method": method, "recipe": recipe, "seed": s, "fold": k, "out": str(out / tag),
           "scores": scores}
    if method == "bn_only":  # the source model, BN statistics re-estimated on the fold's target images
        return [{**job, "train": False, "init_from": src_ck, "dep": f"source_s{s}", "overrides": [],
                 "bn_images": bn}]
    jobs = []
    if method == "pipa_distill":
        arch = a.distill
        b1 = a.distill.replace("segformer-", "")
        t_src, t_ada = f"source_{b1}_s{s}", f"pipa_{b1}_f{k}_s{s}"
        if k == 0:
            jobs.append({**base, "name": f"source_{b1}", "method": "source_only_b1", "recipe": SRC, "seed": s,
                         "fold": None, "out": str(out / t_src), "dep": None, "scores": {"all": camvid(data, "dusk_train")},
                         "overrides": common(s, t_src, a.src_iters) + [f"model.arch={arch}"] + list(a.set)})
        jobs.append({**base, "name": f"pipa_{b1}", "method": "pipa_b1", "recipe": PIPA, "seed": s, "fold": k,
                     "out": str(out / t_ada), "dep": t_src, "scores": scores,
                     "overrides": common(s, t_ada, a.adapt_iters) + target + list(a.distill_set) + list(a.set) +
                     [f"model.arch={arch}", f"init_from={out / t_src / 'final.pt'}"]})
        ov = ov + ["adapt.distill.enabled=true", f"adapt.distill.teacher_checkpoint={out / t_ada / 'final.pt'}"]
        dep = [f"source_s{s}", t_ada]
    else:
        dep = f"source_s{s}"
    pbn, num, bs = _recipe_pbn(recipe, ov)
    jobs.append({**job, "dep": dep, "init_from": src_ck, "bn_images": bn if pbn else None, "bn_num_images": num,
                 "bn_batch_size": bs,
                 "overrides": common(s, tag, a.adapt_iters) + target + [f"init_from={src_ck}"] + ov})
    return jobs


def make_oracle_data(data: Path, root: Path) -> None:
    """Symlinks: ``fold<k>_train`` = day_train + the adaptation half of dusk fold k (with labels)."""
    from pipa_edge.data.folds import fold_indices

    dusk = sorted((data / "dusk_train" / "images").iterdir())
    day = sorted((data / "day_train" / "images").iterdir())
    for k in range(2):
        half = [dusk[i] for i in fold_indices([p.stem for p in dusk], 2, k, "train")]
        for sub in ("images", "labels"):
            d = root / f"fold{k}_train" / sub
            d.mkdir(parents=True, exist_ok=True)
            for f in day + half:
                src = f if sub == "images" else f.parent.parent / "labels" / f.name
                link = d / f.name
                if not link.exists():
                    link.symlink_to(src.resolve())


def cpu_minutes(jobs: list[dict], src_iters: int, adapt_iters: int) -> float:
    """Estimated CPU minutes of ``jobs`` (1 thread, unloaded core; scoring not counted)."""
    total = 0.0
    for j in jobs:
        m = MINUTES.get(j["method"], 40)
        if j["method"] != "bn_only":
            m *= (src_iters if j["method"].startswith("source_only") else adapt_iters) / 600
        total += m
    return total


def heldout_table(results: list[dict], size: str) -> list[dict]:
    """Per row: per-seed held-out mIoU (both folds' held-out halves pooled), transductive mIoU (each
    fold's adaptation half, pooled) and the difference to the strong source model of the same seed.
    A row/seed missing a fold is left out."""
    runs: dict[tuple[str, int], dict] = {}
    for r in results:
        runs.setdefault((r["name"], r["seed"]), {})[r.get("fold")] = r["scores"][size]
    src = {s: pooled_miou([f[None]["all"]["confusion_matrix"]]) for (n, s), f in runs.items() if n == "source"}
    names = ["source"] + [n for n in LABELS if n not in ("source", "oracle")]
    names += sorted({n for n, _ in runs} - set(names) - {"oracle"}) + ["oracle"]
    table = []
    for n in names:
        per = []
        for (rn, s), f in sorted(runs.items(), key=lambda kv: kv[0][1]):
            if rn != n:
                continue
            if n == "source":
                h = t = src[s]
            elif set(f) >= {0, 1}:
                h = pooled_miou([f[k]["heldout"]["confusion_matrix"] for k in (0, 1)])
                t = (pooled_miou([f[k]["transductive"]["confusion_matrix"] for k in (0, 1)])
                     if "transductive" in f[0] else None)
            else:
                continue
            per.append({"seed": s, "heldout": h, "transductive": t, "diff": h - src[s] if s in src else None})
        if not per:
            continue
        hm, hsd = mean_sd([p["heldout"] for p in per])
        tr = [p["transductive"] for p in per if p["transductive"] is not None]
        diffs = [p["diff"] for p in per if p["diff"] is not None]
        table.append({"row": n, "label": LABELS.get(n, n), "seeds": [p["seed"] for p in per], "per_seed": per,
                      "heldout_mean": hm, "heldout_sd": hsd, "transductive_mean": mean_sd(tr)[0] if tr else None,
                      "diff_mean": mean_sd(diffs)[0] if diffs else None, "diff_min": min(diffs) if diffs else None})
    return table


def merge_heldout(results: list[dict], prev: dict, source: str) -> list[dict]:
    """``results`` plus the runs of an earlier held-out summary JSON (``prev["runs"]``) whose
    (row, seed, fold) ``results`` does not have: tables built over sessions whose run folders are
    gone. The runs of ``results`` win; merged ones are marked ``merged_from``."""
    have = {(r["name"], r["seed"], r.get("fold")) for r in results}
    extra = [{**r, "merged_from": r.get("merged_from") or source} for r in prev.get("runs", [])
             if (r["name"], r["seed"], r.get("fold")) not in have]
    return list(results) + extra


def decide(table: list[dict], target_gain: float = 3.0, min_seeds: int = 3) -> dict:
    """The decision rule: the row (not the oracle) with the best held-out mean is the recommended recipe.
    Provisional (and the target not judged) while any row has fewer than ``min_seeds`` seeds."""
    cands = [t for t in table if t["row"] != "oracle"]
    if not cands:
        return {}
    best = max(cands, key=lambda t: t["heldout_mean"])
    gap = None
    oracle = next((t for t in table if t["row"] == "oracle"), None)
    src = next((t for t in table if t["row"] == "source"), None)
    if oracle and src and oracle["heldout_mean"] > src["heldout_mean"]:
        gap = 100 * (best["heldout_mean"] - src["heldout_mean"]) / (oracle["heldout_mean"] - src["heldout_mean"])
    met = best["row"] != "source" and (best["diff_mean"] or 0) >= target_gain and (best["diff_min"] or 0) > 0
    short = sorted(t["row"] for t in table if t["row"] != "oracle" and len(t["seeds"]) < min_seeds)
    return {"recommended": best["row"], "heldout_mean": best["heldout_mean"], "heldout_sd": best["heldout_sd"],
            "diff_per_seed": [p["diff"] for p in best["per_seed"]], "diff_mean": best["diff_mean"],
            "gap_closed_pct": gap, "target": f">= strong source + {target_gain} on the mean, > 0 on every seed",
            "target_met": bool(met) and not short, "provisional": bool(short),
            "rows_short_of_seeds": short, "min_seeds": min_seeds}


def print_heldout(table: list[dict], decision: dict, size: str) -> None:
    print(f"\nheld-out dusk protocol at {size} (2 folds, held-out halves pooled; mIoU %)")
    print(f"{'row':38s} {'held-out':>13s} {'transductive':>12s} {'Δ vs source per seed':>26s} {'Δ mean':>7s} {'min Δ':>6s}")
    for t in table:
        d = " ".join(f"{p['diff']:+.1f}" if p["diff"] is not None else "-" for p in t["per_seed"])
        tr = f"{t['transductive_mean']:.1f}" if t["transductive_mean"] is not None else "-"
        dm = f"{t['diff_mean']:+.1f}" if t["diff_mean"] is not None else "-"
        mn = f"{t['diff_min']:+.1f}" if t["diff_min"] is not None else "-"
        print(f"{t['label'][:38]:38s} {fmt(t['heldout_mean'], t['heldout_sd']):>13s} {tr:>12s} {d:>26s} {dm:>7s} {mn:>6s}")
    if decision:
        sd = f" ± {decision['heldout_sd']:.1f}" if decision["heldout_sd"] is not None else ""
        per = ", ".join(f"{d:+.1f}" for d in decision["diff_per_seed"] if d is not None)
        gap = f"; {decision['gap_closed_pct']:.0f} % of the gap to the oracle" if decision["gap_closed_pct"] is not None else ""
        print(f"\ndecision: recommended recipe = '{decision['recommended']}' (best held-out mean "
              f"{decision['heldout_mean']:.1f}{sd}; vs strong source per seed: {per or '-'}{gap}); "
              f"target ({decision['target']}): {'MET' if decision['target_met'] else 'NOT met'}")
        if decision.get("provisional"):
            print(f"PROVISIONAL: fewer than {decision['min_seeds']} seeds in {', '.join(decision['rows_short_of_seeds'])}; "
                  "the target is not judged until every row has them")
