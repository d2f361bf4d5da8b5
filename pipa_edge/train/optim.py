"""AdamW parameter groups (encoder lr / head lr × mult) and the warm-up + poly schedule.

Schedule (mmseg ``PolyLR`` with linear warm-up, as DAFormer), factor of the base lr at step ``it``
(0-based, the lr used *for* that step)::

    poly(it)   = (1 - min_lr_ratio) * (1 - it / max_iters) ** power + min_lr_ratio
    warm(it)   = warmup_ratio + (1 - warmup_ratio) * it / warmup_iters     (it < warmup_iters)
    factor(it) = poly(it) * warm(it)     (warm = 1 after the warm-up)
"""

from __future__ import annotations

import torch
from torch import nn

from pipa_edge.train.config import OptimConfig

ENCODER_PREFIXES = ("segmenter.encoder.", "segmenter.backbone.")


class WarmupPoly:
    """Picklable lr factor (so LambdaLR's state_dict stays plain data)."""

    def __init__(self, cfg: OptimConfig):
        self.max_iters = cfg.max_iters
        self.warmup_iters = cfg.warmup_iters
        self.warmup_ratio = cfg.warmup_ratio
        self.power = cfg.power
        self.min_ratio = cfg.min_lr_ratio

    def __call__(self, it: int) -> float:
        frac = min(max(it, 0), self.max_iters) / self.max_iters
        f = (1.0 - self.min_ratio) * (1.0 - frac) ** self.power + self.min_ratio
        if self.warmup_iters > 0 and it < self.warmup_iters:
            f *= self.warmup_ratio + (1.0 - self.warmup_ratio) * it / self.warmup_iters
        return f


def param_groups(module: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Encoder parameters at ``lr``, everything else trainable (decoder, heads) at ``lr × head_lr_mult``.

    With ``no_decay_norm_bias`` 1-D parameters (biases, norm scales) get no weight decay.
    Teacher/frozen parameters (``requires_grad=False``) are never in a group.
    """
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        is_enc = name.startswith(ENCODER_PREFIXES)
        no_wd = cfg.no_decay_norm_bias and p.ndim <= 1
        groups.setdefault((is_enc, no_wd), []).append(p)
    out = []
    for (is_enc, no_wd), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        out.append({"params": params, "lr": cfg.lr * (1.0 if is_enc else cfg.head_lr_mult),
                    "weight_decay": 0.0 if no_wd else cfg.weight_decay,
                    "name": f"{'encoder' if is_enc else 'head'}{'_no_wd' if no_wd else ''}"})
    if not out:
        raise ValueError("the training method has no trainable parameters")
    return out


def build_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(module, cfg), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, WarmupPoly(cfg))
