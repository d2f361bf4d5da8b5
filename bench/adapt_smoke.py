"""Smoke table of the adaptation rows on one fixed batch (CI-sized; not a quality claim).

Each row (source-only, mean teacher, + pixel contrast, + patch contrast, + task-smart sampling)
gets a copy of the same initial segmenter, the same batch and ``steps`` optimiser steps (AdamW),
the trainer's step order (``training_step`` → ``backward`` → ``step`` → ``after_optimizer_step``).
It reports every loss term's first and last values and whether all were finite. A helper of
``bench/camvid_extras.py`` (``bench/camvid_adapt.py --synth``) and of ``tests/test_adapt_synth_smoke.py``.
"""

from __future__ import annotations

import copy
import math

import torch

ROWS = {
    "source_only": ("source_only", {}),
    "mean_teacher": ("mean_teacher", {}),
    "pixel": ("pipa", {"pixel_contrast": {"enabled": True}, "sampler": {"kind": "random"}}),
    "pixel_patch": ("pipa", {"pixel_contrast": {"enabled": True}, "patch_contrast": {"enabled": True},
                             "sampler": {"kind": "random"}}),
    "pipa": ("pipa", {"pixel_contrast": {"enabled": True}, "patch_contrast": {"enabled": True},
                      "sampler": {"kind": "task_smart"}}),
}


def smoke_table(segmenter, batch: dict, steps: int = 12, lr: float = 1e-3, base_cfg: dict | None = None,
                rows=tuple(ROWS), seed: int = 0) -> list[dict]:
    from pipa_edge.adapt.config import AdaptConfig
    from pipa_edge.train.method import build_method

    out = []
    for row in rows:
        name, extra = ROWS[row]
        data = copy.deepcopy(base_cfg or {})
        for k, v in extra.items():
            data.setdefault(k, {}).update(v)
        torch.manual_seed(seed)
        method = build_method(name, copy.deepcopy(segmenter), AdaptConfig.model_validate(data))
        method.train()
        opt = torch.optim.AdamW(method.trainable_parameters(), lr=lr)
        hist: dict[str, list[float]] = {}
        for it in range(steps):
            loss, logs = method.training_step(batch, it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.after_optimizer_step(it)
            for k, v in {"loss": float(loss.detach()), **logs}.items():
                hist.setdefault(k, []).append(float(v))
        k3 = max(1, steps // 4)
        out.append({"row": row, "method": name, "finite": all(math.isfinite(v) for vs in hist.values() for v in vs),
                    "loss_first": sum(hist["loss"][:k3]) / k3, "loss_last": sum(hist["loss"][-k3:]) / k3,
                    "terms": {k: [vs[0], vs[-1]] for k, vs in hist.items()}})
    return out
