#!/usr/bin/env python3
"""Per-objective gradients of a PiPa++ step: how large each term's gradient is and whether it
agrees with the segmentation (cross-entropy) gradient.

Takes a training config (a recipe or a run's ``config.yaml``) and a model state — the run's
``init_from`` (start of adaptation) by default, or ``--state RUN/last.pt`` (end of a run, with its
projection heads and teacher) — and, on ``--batches`` real batches of the config's data, runs the
adapter's ``training_step`` three times per batch from the same RNG state with the contrastive
weights set to (0, 0), (w_pixel, 0) and (w_pixel, w_patch). Gradients are linear in the loss, so

    g_ce    = grad(L_src + L_mix)                       (weights 0, 0)
    g_pixel = grad(L with pixel) - g_ce                 (= w_pixel * grad L_pixel)
    g_patch = grad(L with both) - grad(L with pixel)    (= w_patch * grad L_patch)

on the segmenter's parameters (the exported model: encoder + decoder; the projection heads are
left out). Reported per batch-mean: the norms, cos(g_ce, g_pixel), cos(g_ce, g_patch), and the
total gradient norm over every trainable parameter against ``optim.grad_clip`` (the clip factor
the trainer would apply). No optimiser step is taken: the model is the same for every batch.

    python bench/grad_conflict.py runs/camvid_cpu/pipa_cbst_s0/config.yaml \
        --set init_from=runs/camvid_cpu/source_only_s0/final.pt --batches 6 --json runs/grad_start.json
    python bench/grad_conflict.py runs/camvid_cpu/pipa_cbst_s0/config.yaml \
        --state runs/camvid_cpu/pipa_cbst_s0/last.pt --batches 6 --json runs/grad_end.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _flat_grads(params) -> "torch.Tensor":
    import torch

    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params])


def measure(method, batches, it: int, clip: float) -> list[dict]:
    """One dict per batch (norms, cosines, clip factor); see the module docstring."""
    import torch
    import torch.nn.functional as F

    cfg = method.cfg
    w_pix = cfg.pixel_contrast.weight if cfg.pixel_contrast.enabled else 0.0
    w_patch = cfg.patch_contrast.weight if cfg.patch_contrast.enabled else 0.0
    seg_params = [p for p in method.segmenter.parameters() if p.requires_grad]
    enc_ids = {id(p) for n, p in method.segmenter.named_parameters() if "encoder" in n}
    all_params = list(method.trainable_parameters())
    rows = []
    for batch in batches:
        rng = torch.get_rng_state()
        grads, totals = [], []
        for wp, wq in ((0.0, 0.0), (w_pix, 0.0), (w_pix, w_patch)):
            cfg.pixel_contrast.weight, cfg.patch_contrast.weight = wp, wq
            torch.set_rng_state(rng)
            method.zero_grad(set_to_none=True)
            loss, _ = method.training_step(batch, it)
            loss.backward()
            grads.append(_flat_grads(seg_params))
            totals.append(float(_flat_grads(all_params).norm()))
        cfg.pixel_contrast.weight, cfg.patch_contrast.weight = w_pix, w_patch
        g_ce, g_pix, g_patch = grads[0], grads[1] - grads[0], grads[2] - grads[1]
        sizes = [p.numel() for p in seg_params]
        is_enc = torch.cat([torch.full((n,), id(p) in enc_ids) for p, n in zip(seg_params, sizes)])

        def cos(a, b):
            return float(F.cosine_similarity(a, b, dim=0)) if float(b.norm()) > 0 else float("nan")

        rows.append({
            "norm_ce": float(g_ce.norm()), "norm_pixel": float(g_pix.norm()), "norm_patch": float(g_patch.norm()),
            "cos_ce_pixel": cos(g_ce, g_pix), "cos_ce_patch": cos(g_ce, g_patch),
            "cos_ce_pixel_encoder": cos(g_ce[is_enc], g_pix[is_enc]),
            "cos_ce_patch_encoder": cos(g_ce[is_enc], g_patch[is_enc]),
            "norm_total_all_params": totals[2], "norm_ce_all_params": totals[0],
            "clip_factor": min(1.0, clip / totals[2]) if clip else 1.0,
            "clip_factor_ce_only": min(1.0, clip / totals[0]) if clip else 1.0,
        })
    method.zero_grad(set_to_none=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="training config: a recipe or a run's config.yaml (method pipa)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--state", default=None, help="a run's last.pt (segmenter + heads + teacher); "
                    "default: the config's init_from")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--it", type=int, default=None, help="iteration passed to the step (warm-up ramps); "
                    "default: half of optim.max_iters")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import torch

    from pipa_edge.errors import PipaError
    from pipa_edge.train.checkpoint import load_train_state, restore_method
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import Trainer

    try:
        torch.set_num_threads(a.threads)
        tmp = tempfile.mkdtemp(prefix="grad_conflict_")
        cfg = load_train_config(a.config, [*a.set, "device=cpu", f"out_dir={tmp}", "num_workers=0"])
        if cfg.method != "pipa":
            raise PipaError(f"{a.config}: method is '{cfg.method}', this diagnostic needs 'pipa' (key 'method')")
        tr = Trainer(cfg, resume=False)
        tr.setup()
        if a.state:
            restore_method(tr.method, load_train_state(a.state), a.state)
        it = cfg.optim.max_iters // 2 if a.it is None else a.it
        gen = tr.batches()
        rows = measure(tr.method, (next(gen) for _ in range(a.batches)), it, cfg.optim.grad_clip)
    except PipaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = list(rows[0])
    summary = {k: statistics.fmean(r[k] for r in rows) for k in keys}
    print(f"{'quantity':<24} {'mean':>9} {'min':>9} {'max':>9}   ({len(rows)} batches, state "
          f"{a.state or cfg.init_from})")
    for k in keys:
        vals = [r[k] for r in rows]
        print(f"{k:<24} {summary[k]:>9.4f} {min(vals):>9.4f} {max(vals):>9.4f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"config": a.config, "set": a.set, "state": a.state or cfg.init_from,
                                            "it": it, "grad_clip": cfg.optim.grad_clip, "summary": summary,
                                            "batches": rows}, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
