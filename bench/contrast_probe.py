#!/usr/bin/env python3
"""Does PiPa++'s pixel-contrast embedding separate the classes? A probe of a run's state.

On ``--batches`` real batches of a PiPa++ config, one no-grad ``training_step`` per batch captures
what the pixel-contrast module receives (student decoder features at stride 4, the majority-vote
labels of source GT + confident target pseudo-labels, the hardness score). On the labelled cells of
each batch it reports, for the projected embeddings ``z`` (the training-only head) and for the raw
decoder features ``f`` (L2-normalised; what the exported model keeps):

- ``within`` / ``between``: mean cosine of same-class / different-class cell pairs,
- ``centroid_acc``: class-balanced accuracy of nearest-class-centroid on held-out cells (centroids
  from the even cells, scored on the odd ones),

the pixel-contrast loss with the run's sampler, a random sampler and (task-smart runs) only its hard
anchors / only its hard negatives, against its chance level ``log(1 + k)`` (every similarity equal;
``k`` = negatives per anchor); and where the run's sampler looks (:func:`geometry`: share of anchors
on class boundaries, cosines of positives / hard / random negatives, share within 2 cells of the
anchor). State: the config's
``init_from`` with freshly initialised heads (start) or ``--state RUN/last.pt`` (end).

    python bench/contrast_probe.py runs/camvid_cpu/pipa_cbst_bnfix_s0/config.yaml \
        --state runs/camvid_cpu/pipa_cbst_bnfix_s0/last.pt --batches 4 --json docs/results/contrast_probe_camvid.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def separability(x, y, num_classes: int) -> dict:
    """Cosine statistics and held-out nearest-centroid accuracy of ``x (P, D)`` (normalised) by ``y (P,)``."""
    import torch

    sim = x @ x.t()
    same = y.view(-1, 1) == y.view(1, -1)
    off = ~torch.eye(len(y), dtype=torch.bool)
    tr, te = torch.arange(len(y)) % 2 == 0, torch.arange(len(y)) % 2 == 1
    classes = [c for c in range(num_classes) if bool((y[tr] == c).any()) and bool((y[te] == c).any())]
    cent = torch.nn.functional.normalize(torch.stack([x[tr][y[tr] == c].mean(0) for c in classes]), dim=1)
    pred = torch.tensor(classes)[(x[te] @ cent.t()).argmax(1)]
    acc = [float((pred[y[te] == c] == c).float().mean()) for c in classes]
    return {"within": float(sim[same & off].mean()), "between": float(sim[~same].mean()),
            "centroid_acc": statistics.fmean(acc), "classes": len(classes)}


def _mixed(sampler, anchors: bool):
    """The run's task-smart sampler with only its hard anchors (``anchors``) or only its hard negatives."""
    from pipa_edge.adapt.sampling import TaskSmartSampler

    if not isinstance(sampler, TaskSmartSampler):
        return None
    return TaskSmartSampler(sampler.hard_anchor_ratio if anchors else 0.0,
                            0.0 if anchors else sampler.hard_negative_ratio, sampler.generator)


def geometry(pix, f, y, score) -> dict:
    """Where the run's sampler looks: boundary anchors, near / similar negatives (cosines in z)."""
    import torch
    import torch.nn.functional as F

    from pipa_edge.adapt.sampling import RandomSampler, TaskSmartSampler, topk_mask

    b, c, h, w = f.shape
    yg = y.reshape(b, h, w)
    pad = F.pad(yg.float().unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    nb = F.unfold(pad, 3).view(b, 9, h, w)  # the 3×3 neighbourhood of every cell
    ok = (nb != pix.ignore_index) & (yg.unsqueeze(1) != pix.ignore_index)
    boundary = ((nb != yg.unsqueeze(1).float()) & ok).any(1).reshape(-1)
    yy, ff = y.reshape(-1), f.permute(0, 2, 3, 1).reshape(-1, c)
    a_idx, c_idx = pix.select(yy, None if score is None else score.reshape(-1))
    rand_a = RandomSampler(pix.sampler.generator).anchors(yy, None, pix.anchors_per_class, pix.ignore_index,
                                                          pix.num_classes)
    zc = pix.embed(ff[c_idx])
    za = zc[torch.searchsorted(c_idx, a_idx)]
    sim = za @ zc.t()
    ya, yc = yy[a_idx], yy[c_idx]
    pos = (ya.view(-1, 1) == yc.view(1, -1)) & (a_idx.view(-1, 1) != c_idx.view(1, -1))
    other = ya.view(-1, 1) != yc.view(1, -1)
    k = pix.negatives_per_anchor
    ratio = pix.sampler.hard_negative_ratio if isinstance(pix.sampler, TaskSmartSampler) else 0.0
    hard = topk_mask(sim.detach(), other, int(round(ratio * min(k, sim.shape[1]))))
    rnd = RandomSampler(pix.sampler.generator).negatives(sim, other & ~hard, k)

    def near(mask):  # same image, within 2 cells (stride 4: 8 input pixels) of the anchor
        ia, ic = a_idx.view(-1, 1).expand_as(mask)[mask], c_idx.view(1, -1).expand_as(mask)[mask]
        same = ia // (h * w) == ic // (h * w)
        ra, ca, rc, cc = (ia % (h * w)) // w, ia % w, (ic % (h * w)) // w, ic % w
        return float((same & ((ra - rc).abs() <= 2) & ((ca - cc).abs() <= 2)).float().mean()) if mask.any() else None

    mean = (lambda m: float(sim[m].mean()) if m.any() else None)  # noqa: E731 - None: no such pair (JSON null)
    return {"anchor_boundary_run": float(boundary[a_idx].float().mean()),
            "anchor_boundary_random": float(boundary[rand_a].float().mean()),
            "cells_boundary": float(boundary[yy != pix.ignore_index].float().mean()),
            "cos_pos": mean(pos), "cos_hard_neg": mean(hard), "cos_random_neg": mean(rnd),
            "near_pos": near(pos), "near_hard_neg": near(hard), "near_random_neg": near(rnd)}


def probe(method, batches, it: int, max_cells: int) -> list[dict]:
    import torch

    from pipa_edge.adapt.sampling import RandomSampler

    pix = method.pixel
    captured = {}
    orig = pix.forward

    def grab(features, labels, score=None):
        captured.update(f=features.detach(), y=labels.detach(), s=None if score is None else score.detach())
        return orig(features, labels, score)

    pix.forward = grab
    rows = []
    g = torch.Generator().manual_seed(0)
    try:
        for batch in batches:
            with torch.no_grad():
                method.training_step(batch, it)
                f, y, s = captured["f"], captured["y"], captured["s"]
                b, c, h, w = f.shape
                ff, yy = f.permute(0, 2, 3, 1).reshape(-1, c), y.reshape(-1)
                keep = (yy != pix.ignore_index).nonzero().squeeze(1)
                keep = keep[torch.randperm(len(keep), generator=g)[:max_cells]]
                z = pix.embed(ff[keep])
                raw = torch.nn.functional.normalize(ff[keep].float(), dim=1)
                row = {"cells": len(keep),
                       **{f"z_{k}": v for k, v in separability(z, yy[keep], pix.num_classes).items()},
                       **{f"f_{k}": v for k, v in separability(raw, yy[keep], pix.num_classes).items()}}
                k = pix.negatives_per_anchor
                run_sampler = pix.sampler
                for key, sampler, score in (("run_sampler", run_sampler, s),
                                            ("random_sampler", RandomSampler(run_sampler.generator), None),
                                            ("hard_anchors_only", _mixed(run_sampler, anchors=True), s),
                                            ("hard_negatives_only", _mixed(run_sampler, anchors=False), None)):
                    if sampler is None:
                        continue
                    pix.sampler = sampler
                    torch.manual_seed(1)
                    row[f"loss_{key}"] = float(orig(f, y, score))
                pix.sampler = run_sampler
                torch.manual_seed(1)
                row.update(geometry(pix, f, y, s))
                row["chance"] = math.log(1 + min(k, int(pix.last_stats.get("candidates", k))))
            rows.append(row)
    finally:
        pix.forward = orig
    return rows


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a PiPa++ recipe or a run's config.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--state", default=None, help="a run's last.pt; default: init_from with fresh heads")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--max-cells", type=int, default=3000, help="labelled cells per batch for the statistics")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default=None, help="row name in the JSON (default: the state's run folder)")
    ap.add_argument("--json", default=None, help="add this probe as a row to a JSON file")
    a = ap.parse_args()
    import torch

    from pipa_edge.errors import PipaError
    from pipa_edge.train.checkpoint import load_train_state, restore_method
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import Trainer

    try:
        torch.set_num_threads(a.threads)
        torch.manual_seed(0)
        cfg = load_train_config(a.config, [*a.set, "device=cpu", f"out_dir={tempfile.mkdtemp(prefix='probe_')}",
                                           "num_workers=0"])
        if cfg.method != "pipa" or not cfg.adapt.pixel_contrast.enabled:
            raise PipaError(f"{a.config}: needs method 'pipa' with adapt.pixel_contrast.enabled")
        tr = Trainer(cfg, resume=False)
        tr.setup()
        if a.state:
            restore_method(tr.method, load_train_state(a.state), a.state)
        gen = tr.batches()
        rows = probe(tr.method, (next(gen) for _ in range(a.batches)), cfg.optim.max_iters, a.max_cells)
    except PipaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = {k: statistics.fmean(v) if (v := [r[k] for r in rows if r.get(k) is not None]) else None
               for k in rows[0]}
    name = a.name or (Path(a.state).parent.name + "_end" if a.state else Path(a.config).parent.name + "_start")
    print(f"{name}: {a.batches} batches, {summary['cells']:.0f} labelled cells each")
    print(f"{'':14}{'within':>8}{'between':>9}{'centroid acc':>14}")
    for p, label in (("z", "projected z"), ("f", "decoder f")):
        print(f"{label:14}{summary[p + '_within']:8.3f}{summary[p + '_between']:9.3f}{summary[p + '_centroid_acc']:14.3f}")
    losses = ", ".join(f"{k[5:].replace('_', ' ')} {v:.3f}" for k, v in summary.items() if k.startswith("loss_"))
    print(f"pixel-contrast loss: {losses}; chance {summary['chance']:.3f}")
    print(f"anchors on class boundaries: run's sampler {summary['anchor_boundary_run']:.2f}, random "
          f"{summary['anchor_boundary_random']:.2f} (of all labelled cells {summary['cells_boundary']:.2f}); "
          f"cos(z) positives {_f(summary['cos_pos'])}, hard negatives {_f(summary['cos_hard_neg'])}, random "
          f"negatives {_f(summary['cos_random_neg'])}; within 2 cells of the anchor: positives "
          f"{_f(summary['near_pos'])}, hard negatives {_f(summary['near_hard_neg'])}, random "
          f"{_f(summary['near_random_neg'])}")
    if a.json:
        p = Path(a.json)
        data = json.loads(p.read_text()) if p.is_file() else {"rows": {}, "commands": []}
        data["rows"][name] = {"config": a.config, "state": a.state or cfg.init_from, "summary": summary,
                              "batches": rows}
        data["commands"].append("python bench/contrast_probe.py " + " ".join(sys.argv[1:]))
        p.write_text(json.dumps(data, indent=1))
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
