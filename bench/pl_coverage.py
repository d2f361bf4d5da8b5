"""Benchmark: are a model's target errors inside or outside the cells its own pseudo-labels cover?

    python bench/pl_coverage.py --ckpt NAME=runs/camvid_cpu/source_only_s0/final.pt \
        --ckpt NAME=runs/camvid_cpu/pipa_cbst_bnfix_s0/final.pt ... [--json docs/results/pl_coverage_camvid.json]

(``--json``: the rows are added to that file's, a file of another setting is refused.)

Self-training (the mixed-image cross-entropy) and the contrastive terms (pixel contrast's target
cells) learn from the *confident* pixels of the teacher. This script takes a checkpoint as the
teacher (eval mode, its saved BN statistics: what the EMA teacher is at the start / end of a run)
and applies the training rule of the CamVid recipes to its predictions on the scored target frames
(``dusk_train``, 180×240, batches of 8 like the training batch): a pixel is *covered* when its
confidence reaches ``min(--threshold, --class-quantile of that predicted class's confidences in the
batch)``. Against the ground truth (read here only to score) it reports, over labelled pixels:

- ``covered``: share of pixels covered; ``acc_covered`` / ``acc_uncovered``: pixel accuracy in each,
- ``err_covered``: share of all errors that are covered (confident and wrong: self-training and
  the contrastive terms *reinforce* them) — the rest are errors no target label reaches,
- per ground-truth class: pixel share, coverage, recall covered / uncovered, its most frequent
  wrong prediction,
- the largest confusions (ground truth → prediction, share of all errors), covered and not.

The dataset's labels never reach training; this is a diagnosis of where the remaining errors are.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from lib_cli_args import existing_dir, named_checkpoint  # noqa: E402
from lib_results_json import SettingMismatch, open_results, write_results  # noqa: E402


def coverage(model, dataset, threshold: float, quantile: float | None, batch: int = 8) -> dict:
    """Confusion matrices of covered and uncovered labelled pixels: ``{"covered": (K, K), "uncovered": ...}``."""
    import torch
    import torch.nn.functional as F

    from pipa_edge.adapt.pseudo import make_pseudo_labels
    from pipa_edge.train.config import EvalConfig
    from pipa_edge.train.evaluate import label_lut, predict_logits

    k = model.classes.num_classes
    lut = label_lut(getattr(dataset, "classes", None), model.classes)
    whole = EvalConfig()  # whole-image forward, as the scorer
    cms = {"covered": np.zeros((k, k), np.int64), "uncovered": np.zeros((k, k), np.int64)}
    for i0 in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(i0, min(i0 + batch, len(dataset)))]
        img = torch.stack([torch.as_tensor(np.ascontiguousarray(s["image"])) for s in items])
        gt = torch.stack([torch.as_tensor(np.asarray(s["label"])) for s in items]).long()
        if lut is not None:
            gt = lut[gt.clamp(0, 255)]
        with torch.no_grad():
            logits = predict_logits(model, img, whole)
        if logits.shape[-2:] != gt.shape[-2:]:
            logits = F.interpolate(logits, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        pl = make_pseudo_labels(logits, threshold, quality_weight=False, class_quantile=quantile)
        valid = (gt >= 0) & (gt < k)
        for name, sel in (("covered", pl.weight > 0), ("uncovered", pl.weight <= 0)):
            m = valid & sel
            cms[name] += np.bincount((gt[m] * k + pl.label[m]).numpy(), minlength=k * k).reshape(k, k)
    return cms


def summarize(cms: dict, names: tuple[str, ...], top: int = 4) -> dict:
    cov, unc = cms["covered"].astype(np.float64), cms["uncovered"].astype(np.float64)
    tot = cov + unc
    n, errs = tot.sum(), tot.sum() - np.trace(tot)
    off = lambda cm: cm - np.diag(np.diag(cm))  # noqa: E731

    def confusions(cm):
        e = off(cm)
        idx = np.argsort(e, axis=None)[::-1][:top]
        return [{"gt": names[i // len(names)], "pred": names[i % len(names)],
                 "share_of_errors": float(e.flat[i] / max(errs, 1))} for i in idx if e.flat[i] > 0]

    per_class = {}
    for c, name in enumerate(names):
        row_c, row_u = cov[c].sum(), unc[c].sum()
        if row_c + row_u == 0:
            continue
        wrong = off(tot)[c]
        per_class[name] = {"pixels": float((row_c + row_u) / n), "covered": float(row_c / (row_c + row_u)),
                           "recall_covered": float(cov[c, c] / row_c) if row_c else None,
                           "recall_uncovered": float(unc[c, c] / row_u) if row_u else None,
                           "recall": float(tot[c, c] / (row_c + row_u)),
                           "top_wrong": names[int(wrong.argmax())] if wrong.sum() > 0 else None}
    return {"pixel_acc": float(np.trace(tot) / n), "covered": float(cov.sum() / n),
            "acc_covered": float(np.trace(cov) / max(cov.sum(), 1)), "acc_uncovered": float(np.trace(unc) / max(unc.sum(), 1)),
            "err_covered": float(off(cov).sum() / max(errs, 1)),
            "per_class": per_class, "confusions_covered": confusions(cov), "confusions_uncovered": confusions(unc)}


def _pct(v) -> str:
    return "   –" if v is None else f"{100 * v:4.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", action="append", required=True, metavar="NAME=PATH", type=named_checkpoint)
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/camvid"), type=existing_dir, help="CamVid root (dusk_train is scored)")
    ap.add_argument("--split", default="dusk_train")
    ap.add_argument("--threshold", type=float, default=0.968, help="adapt.pseudo_label.threshold of the recipe")
    ap.add_argument("--class-quantile", type=float, default=0.5, help="adapt.pseudo_label.class_quantile "
                    "(negative: none, the global threshold only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.models.io import load_segmenter

    torch.set_num_threads(args.threads)
    ckpts = dict(args.ckpt)
    quantile = None if args.class_quantile < 0 else args.class_quantile
    ds = build_eval_dataset({"type": "camvid", "root": str(args.data), "split": args.split, "resize": [180, 240]})
    setting = {"data": f"{Path(args.data).resolve()} {args.split} (180×240, {len(ds)} frames)",
               "threshold": args.threshold, "class_quantile": quantile}
    command = "python bench/pl_coverage.py " + " ".join(sys.argv[1:])
    try:  # rows are added to the file's; a file of another setting is refused before any scoring
        res = open_results(args.json, setting, command) if args.json else {**setting, "results": {}}
    except SettingMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"{'checkpoint':26s} {'pix acc':>7s} {'covered':>7s} {'acc cov':>7s} {'acc unc':>7s} {'err cov':>7s}"
          "   largest confusions (gt→pred % of errors; * = covered)")
    for name, path in ckpts.items():
        model = load_segmenter(path).eval()
        s = summarize(coverage(model, ds, args.threshold, quantile), model.classes.names)
        s["checkpoint"] = str(path)
        res["results"][name] = s
        conf = sorted([(c["share_of_errors"], "*" + c["gt"] + "→" + c["pred"]) for c in s["confusions_covered"]]
                      + [(c["share_of_errors"], c["gt"] + "→" + c["pred"]) for c in s["confusions_uncovered"]])[::-1][:4]
        print(f"{name:26s} {_pct(s['pixel_acc']):>7s} {_pct(s['covered']):>7s} {_pct(s['acc_covered']):>7s} "
              f"{_pct(s['acc_uncovered']):>7s} {_pct(s['err_covered']):>7s}   "
              + ", ".join(f"{t} {100 * v:.0f}" for v, t in conf), flush=True)
    last = res["results"][name]["per_class"]
    print(f"\nper class, {name}: pixel share, covered, recall covered / uncovered, most frequent wrong prediction")
    for c, v in last.items():
        print(f"  {c:14s} {_pct(v['pixels'])} {_pct(v['covered'])} {_pct(v['recall_covered'])} / "
              f"{_pct(v['recall_uncovered'])}  → {v['top_wrong']}")
    if args.json:
        write_results(args.json, res)
        print(f"wrote {args.json} ({time.time() - t0:.0f} s; {len(res['results'])} checkpoints in the file)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
