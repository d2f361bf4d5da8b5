"""Anchor / negative samplers for the contrastive objectives, and the shared InfoNCE core.

A sampler answers two questions on flattened pixels (``P`` cells, labels ``(P,)``):

* ``anchors(labels, score, per_class)`` → indices ``(A,)``: class-balanced, at most ``per_class``
  cells of each class, never a cell whose label is the ignore index (or outside ``[0, K)``).
* ``negatives(sim, allowed, k)`` → bool mask ``(A, M)``: at most ``k`` negatives per anchor row,
  chosen only where ``allowed`` is true.

:class:`RandomSampler` draws uniformly (the ablation baseline). :class:`TaskSmartSampler` takes
``hard_anchor_ratio`` of each class's anchors with the highest ``score`` (low teacher confidence /
high student loss) and the rest at random; and ``hard_negative_ratio`` of the negatives as the
most similar allowed candidates (hard negatives, e.g. other classes), the rest at random.
"""

from __future__ import annotations

from typing import Optional

import torch

NEG_FILL = -1.0e4  # stands for -inf in masked log-sum-exp (finite: no NaN gradients in float32)


def info_nce(sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Multi-positive InfoNCE on a similarity matrix ``sim (A, M)`` (already divided by tau)::

        L_i = -1/|P_i| * sum_{p in P_i} log( exp(s_ip) / (exp(s_ip) + sum_{n in N_i} exp(s_in)) )
        L   = mean over anchors i with |P_i| > 0 and |N_i| > 0      (0 if there is none)

    ``pos``/``neg`` are bool ``(A, M)`` masks (disjoint). Computed in float32.
    """
    sim = sim.float()
    neg_lse = torch.logsumexp(sim.masked_fill(~neg, NEG_FILL), dim=1, keepdim=True)  # (A, 1)
    per = -(sim - torch.logaddexp(sim, neg_lse))  # (A, M): -log p(pos | pos + negs)
    npos = pos.sum(dim=1)
    per_anchor = (per * pos.float()).sum(dim=1) / npos.clamp(min=1)
    valid = (npos > 0) & neg.any(dim=1)
    if not bool(valid.any()):
        return sim.sum() * 0.0
    return per_anchor[valid].mean()


def _valid(labels: torch.Tensor, num_classes: Optional[int], ignore_index: int) -> torch.Tensor:
    v = (labels != ignore_index) & (labels >= 0)
    if num_classes is not None:
        v &= labels < num_classes
    return v


def per_class_top(labels: torch.Tensor, key: torch.Tensor, per_class: int, valid: torch.Tensor) -> torch.Tensor:
    """Indices of the (at most) ``per_class`` largest ``key`` cells of every class among ``valid``
    cells, vectorised (no per-class loop): sort by key, then stably by class, rank within class."""
    n = labels.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    big = int(labels[valid].max()) + 1 if bool(valid.any()) else 0
    lab = torch.where(valid, labels, torch.full_like(labels, big + 1))  # invalid cells: their own last group
    order = torch.argsort(key.float(), descending=True)
    grouped = order[torch.argsort(lab[order], stable=True)]
    lab_g = lab[grouped]
    counts = torch.bincount(lab_g, minlength=big + 2)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=labels.device) - starts[lab_g]
    keep = (rank < per_class) & valid[grouped]
    return grouped[keep]


class RandomSampler:
    name = "random"

    def __init__(self, generator: Optional[torch.Generator] = None):
        self.generator = generator

    def _rand(self, shape, device) -> torch.Tensor:
        if self.generator is None:
            return torch.rand(shape, device=device)
        return torch.rand(shape, generator=self.generator).to(device)

    def _key(self, labels: torch.Tensor, score: Optional[torch.Tensor], per_class: int, valid: torch.Tensor) -> torch.Tensor:
        return self._rand(labels.shape, labels.device)

    def anchors(self, labels: torch.Tensor, score: Optional[torch.Tensor], per_class: int, ignore_index: int,
                num_classes: Optional[int] = None) -> torch.Tensor:
        labels = labels.reshape(-1).long()
        valid = _valid(labels, num_classes, ignore_index)
        score = None if score is None else score.reshape(-1)
        return per_class_top(labels, self._key(labels, score, per_class, valid), per_class, valid)

    def _boost(self, key: torch.Tensor, score: Optional[torch.Tensor], valid: torch.Tensor, k: int) -> torch.Tensor:
        return key

    def anchors_batched(self, labels: torch.Tensor, score: Optional[torch.Tensor], valid: torch.Tensor,
                        k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``k`` anchors per row of ``labels (N, P)`` among ``valid``: weighted sampling without
        replacement (Efraimidis-Spirakis) with weight 1 / (cells of that class in the row), i.e.
        class-balanced in expectation. Returns ``(idx (N, k'), ok (N, k'))``; ``ok`` is false where a
        row had fewer than ``k'`` valid cells."""
        lab = torch.where(valid, labels, torch.zeros_like(labels)).clamp(min=0).long()
        n_lab = int(lab.max()) + 1 if lab.numel() else 1
        cnt = torch.zeros(lab.shape[0], n_lab, device=lab.device).scatter_add_(1, lab, valid.float())
        freq = cnt.gather(1, lab).clamp(min=1.0)
        key = torch.log(self._rand(lab.shape, lab.device).clamp(min=1e-12)) * freq  # rarer class: nearer 0
        key = self._boost(key, score, valid, k).masked_fill(~valid, float("-inf"))
        idx = torch.topk(key, min(int(k), key.shape[1]), dim=1).indices
        return idx, valid.gather(1, idx)

    def negatives(self, sim: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
        """At most ``k`` random allowed candidates per row."""
        return topk_mask(self._rand(sim.shape, sim.device), allowed, k)


def topk_mask(key: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the (at most) ``k`` largest ``key`` entries per row among ``allowed``."""
    k = min(int(k), key.shape[-1])
    if k <= 0 or key.numel() == 0:
        return torch.zeros_like(allowed)
    keyed = key.float().masked_fill(~allowed, float("-inf"))
    top = torch.topk(keyed, k, dim=-1).indices
    mask = torch.zeros_like(allowed)
    mask.scatter_(-1, top, True)
    return mask & allowed


class TaskSmartSampler(RandomSampler):
    name = "task_smart"

    def __init__(self, hard_anchor_ratio: float = 0.5, hard_negative_ratio: float = 0.5,
                 generator: Optional[torch.Generator] = None):
        super().__init__(generator)
        self.hard_anchor_ratio = float(hard_anchor_ratio)
        self.hard_negative_ratio = float(hard_negative_ratio)

    def _key(self, labels, score, per_class, valid):
        rnd = self._rand(labels.shape, labels.device)
        n_hard = int(round(self.hard_anchor_ratio * per_class))
        if score is None or n_hard <= 0:
            return rnd
        hard = torch.zeros_like(valid)
        hard[per_class_top(labels, score, n_hard, valid)] = True
        return torch.where(hard, rnd + 2.0, rnd)  # the hardest n_hard of each class, then random ones

    def _boost(self, key, score, valid, k):
        n_hard = int(round(self.hard_anchor_ratio * min(int(k), key.shape[1])))
        if score is None or n_hard <= 0:
            return key
        top = torch.topk(score.float().masked_fill(~valid, float("-inf")), n_hard, dim=1).indices
        return key.scatter(1, top, 1.0e6)  # the hardest n_hard cells of each row come first

    def negatives(self, sim: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
        k = min(int(k), sim.shape[-1])
        n_hard = int(round(self.hard_negative_ratio * k))
        hard = topk_mask(sim.detach(), allowed, n_hard)
        rnd = super().negatives(sim, allowed & ~hard, k - n_hard)
        return hard | rnd


def build_sampler(cfg, generator: Optional[torch.Generator] = None) -> RandomSampler:
    """From a :class:`~pipa_edge.adapt.config.SamplerConfig`."""
    if cfg.kind == "task_smart":
        return TaskSmartSampler(cfg.hard_anchor_ratio, cfg.hard_negative_ratio, generator)
    return RandomSampler(generator)
