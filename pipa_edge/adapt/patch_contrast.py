"""Patch contrast: two overlapping views of the same target image, aligned cell to cell.

Geometry. A view is a box ``(y0, x0, h, w)`` of the image (continuous image units: pixel ``i``
spans ``[i, i+1)``) plus a horizontal flip flag, resampled to ``(oh, ow)`` with ``grid_sample``
(``align_corners=False``). Cell ``(i, j)`` of an ``(fh, fw)`` feature map of that view covers the
image point ``u = x0 + tx * w, v = y0 + ty * h`` with ``tx = (j + .5)/fw`` (``1 - tx`` if
flipped), ``ty = (i + .5)/fh``. For a cell ``a`` of view A, the same image point seen in view B has
feature coordinates ``(tx_B * fw - .5, ty_B * fh - .5)``; if that lies inside B's cell grid, the
positive of ``a`` is B's embedding bilinearly sampled there (exact alignment: a linear image
survives the round trip, see tests).

Loss (both directions A→B and B→A, each image, shapes ``z (n, D, fh, fw)``)::

    s_a+ = z_A[a] . z_B(p_a) / tau
    s_an = z_A[a] . z_B[n] / tau      for B cells at least ``neg_min_dist`` cells from p_a
           z_A[a] . m_q / tau          for FIFO memory entries (pseudo-label != label of a)
    L    = mean_a -log( e^{s_a+} / (e^{s_a+} + sum_{n in N_a} e^{s_an}) )

Anchors (at most ``anchors`` per image and direction) and negatives come from the sampler, with
pseudo-labels for class balance and ``1 - teacher confidence`` as hardness. The embeddings come
from the *student* (gradients reach its encoder); only memory entries are detached.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.adapt.mix import strong_augment
from pipa_edge.adapt.pixel_contrast import ProjectionHead
from pipa_edge.adapt.sampling import RandomSampler, info_nce


class Box(NamedTuple):
    y0: float
    x0: float
    h: float
    w: float
    flip: bool = False


def box_iou(a: Box, b: Box) -> float:
    iy = max(0.0, min(a.y0 + a.h, b.y0 + b.h) - max(a.y0, b.y0))
    ix = max(0.0, min(a.x0 + a.w, b.x0 + b.w) - max(a.x0, b.x0))
    inter = ix * iy
    return inter / (a.h * a.w + b.h * b.w - inter)


def sample_view_boxes(hw: tuple[int, int], scale=(0.5, 0.9), iou=(0.3, 0.7), flip: bool = True,
                      generator: Optional[torch.Generator] = None, tries: int = 200) -> tuple[Box, Box]:
    """Two boxes with IoU in ``iou`` (best effort after ``tries``), sides ``scale`` × image side."""
    H, W = hw
    r = lambda: float(torch.rand(1, generator=generator))  # noqa: E731
    best, best_gap = None, math.inf
    for _ in range(tries):
        s1, s2 = scale[0] + (scale[1] - scale[0]) * r(), scale[0] + (scale[1] - scale[0]) * r()
        h1, w1, h2, w2 = s1 * H, s1 * W, s2 * H, s2 * W
        y1, x1 = r() * (H - h1), r() * (W - w1)
        y2, x2 = r() * (H - h2), r() * (W - w2)
        f1, f2 = (r() < 0.5, r() < 0.5) if flip else (False, False)
        a, b = Box(y1, x1, h1, w1, f1), Box(y2, x2, h2, w2, f2)
        v = box_iou(a, b)
        gap = max(iou[0] - v, v - iou[1], 0.0)
        if gap < best_gap:
            best, best_gap = (a, b), gap
        if gap == 0.0:
            break
    return best


def cell_coords(box: Box, size: tuple[int, int], device=None) -> torch.Tensor:
    """``(fh, fw, 2)`` image coordinates ``(u, v)`` of the cell centres of a view's grid."""
    fh, fw = size
    tx = (torch.arange(fw, device=device, dtype=torch.float32) + 0.5) / fw
    ty = (torch.arange(fh, device=device, dtype=torch.float32) + 0.5) / fh
    if box.flip:
        tx = 1.0 - tx
    u = box.x0 + tx * box.w
    v = box.y0 + ty * box.h
    return torch.stack(torch.meshgrid(u, v, indexing="xy"), dim=-1)


def view_grid(box: Box, out_hw: tuple[int, int], image_hw: tuple[int, int], device=None) -> torch.Tensor:
    """``(oh, ow, 2)`` ``grid_sample`` grid (align_corners=False) that renders ``box`` at ``out_hw``."""
    H, W = image_hw
    c = cell_coords(box, out_hw, device)
    return torch.stack([2 * c[..., 0] / W - 1, 2 * c[..., 1] / H - 1], dim=-1)


def locate(coords: torch.Tensor, box: Box, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image points ``(..., 2)`` → normalised ``grid_sample`` coordinates in ``box``'s ``size`` grid,
    and whether they lie inside its grid of cell centres (where bilinear sampling is exact)."""
    fh, fw = size
    tx = (coords[..., 0] - box.x0) / box.w
    ty = (coords[..., 1] - box.y0) / box.h
    if box.flip:
        tx = 1.0 - tx
    jx, jy = tx * fw - 0.5, ty * fh - 0.5
    eps = 1e-4
    inside = (jx >= -eps) & (jx <= fw - 1 + eps) & (jy >= -eps) & (jy <= fh - 1 + eps)
    return torch.stack([2 * tx - 1, 2 * ty - 1], dim=-1), inside


def make_views(img: torch.Tensor, out_hw: tuple[int, int], scale=(0.5, 0.9), iou=(0.3, 0.7), flip: bool = True,
               photometric: bool = True, generator: Optional[torch.Generator] = None):
    """Two views of each image of ``img (n, 3, H, W)`` float [0,255] → ``(v1, v2, boxes)``."""
    H, W = img.shape[-2:]
    boxes = [sample_view_boxes((H, W), scale, iou, flip, generator) for _ in range(img.shape[0])]
    views = []
    for k in range(2):
        grid = torch.stack([view_grid(bx[k], out_hw, (H, W), img.device) for bx in boxes])
        v = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        if photometric:
            v = strong_augment(v, 0.2, 0.8, 0.5, generator)
        views.append(v)
    return views[0], views[1], boxes


def _lookup(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Nearest pixel of a ``(H, W)`` map at image coordinates ``coords (P, 2)``."""
    H, W = maps.shape[-2:]
    ui = coords[:, 0].floor().long().clamp(0, W - 1)
    vi = coords[:, 1].floor().long().clamp(0, H - 1)
    return maps[vi, ui]


class PatchContrast(nn.Module):
    def __init__(self, in_dim: int, ignore_index: int, proj_dim: int = 64, temperature: float = 0.1,
                 anchors: int = 128, negatives_per_anchor: int = 256, neg_min_dist: float = 1.5,
                 memory_size: int = 0, filter_memory_by_label: bool = True, sampler: Optional[RandomSampler] = None):
        super().__init__()
        self.head = ProjectionHead(in_dim, proj_dim)
        self.ignore_index = int(ignore_index)
        self.temperature, self.anchors, self.neg_k = float(temperature), int(anchors), int(negatives_per_anchor)
        self.neg_min_dist, self.memory_size = float(neg_min_dist), int(memory_size)
        self.filter_memory_by_label = bool(filter_memory_by_label)
        self.sampler = sampler or RandomSampler()
        self.memory: Optional[torch.Tensor] = None  # (Q, D) detached, FIFO (not part of the state)
        self.memory_label: Optional[torch.Tensor] = None
        self.last_stats: dict[str, float] = {}

    def _direction(self, za_map, zb_map, box_a: Box, box_b: Box, label: Optional[torch.Tensor],
                   conf: Optional[torch.Tensor]):
        d, fh, fw = za_map.shape
        ca = cell_coords(box_a, (fh, fw), za_map.device).reshape(-1, 2)
        loc, inside = locate(ca, box_b, (fh, fw))
        lab = _lookup(label, ca) if label is not None else torch.zeros(ca.shape[0], dtype=torch.long, device=ca.device)
        lab_in = torch.where(inside, lab, torch.full_like(lab, self.ignore_index))
        score = None if conf is None else 1.0 - _lookup(conf, ca).float()
        n_cls = max(1, int(torch.unique(lab_in[inside]).numel())) if bool(inside.any()) else 1
        idx = self.sampler.anchors(lab_in, score, max(1, math.ceil(self.anchors / n_cls)), self.ignore_index)[: self.anchors]
        if idx.numel() == 0:
            return None
        za = za_map.reshape(d, -1).t()[idx]  # (A, D)
        zp = F.grid_sample(zb_map.unsqueeze(0), loc[idx].view(1, -1, 1, 2), mode="bilinear",
                           align_corners=False).view(d, -1).t()
        zp = F.normalize(zp, dim=1)
        zb = zb_map.reshape(d, -1).t()  # (M, D)
        cb = cell_coords(box_b, (fh, fw), za_map.device).reshape(-1, 2)
        du = (ca[idx, None, 0] - cb[None, :, 0]).abs() / (box_b.w / fw)
        dv = (ca[idx, None, 1] - cb[None, :, 1]).abs() / (box_b.h / fh)
        allowed = torch.maximum(du, dv) >= self.neg_min_dist
        sims = [(za * zp).sum(1, keepdim=True), za @ zb.t()]
        masks = [torch.zeros_like(allowed[:, :1]), allowed]
        if self.memory is not None and self.memory.numel() > 0:
            sims.append(za @ self.memory.t())
            mem_ok = torch.ones(idx.numel(), self.memory.shape[0], dtype=torch.bool, device=za.device)
            if self.filter_memory_by_label and label is not None:
                mem_ok = lab[idx].view(-1, 1) != self.memory_label.view(1, -1)
            masks.append(mem_ok)
        sim = torch.cat(sims, 1) / self.temperature
        allowed = torch.cat(masks, 1)
        neg = self.sampler.negatives(sim.detach(), allowed, self.neg_k)
        pos = torch.zeros_like(allowed)
        pos[:, 0] = True
        return info_nce(sim, pos, neg), float(sims[0].detach().mean()), za.detach(), lab[idx]

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, boxes: list, label: Optional[torch.Tensor] = None,
                conf: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``f1, f2 (n, C, fh, fw)`` student features of the two views; ``boxes`` from
        :func:`make_views`; ``label``/``conf (n, H, W)`` teacher pseudo-labels of the full images."""
        z1, z2 = self.head(f1), self.head(f2)
        losses, cos, new_z, new_y = [], [], [], []
        for b, (b1, b2) in enumerate(boxes):
            lb = None if label is None else label[b]
            cb = None if conf is None else conf[b]
            for za, zb, ba, bb in ((z1[b], z2[b], b1, b2), (z2[b], z1[b], b2, b1)):
                r = self._direction(za, zb, ba, bb, lb, cb)
                if r is not None:
                    losses.append(r[0])
                    cos.append(r[1])
                    new_z.append(r[2])
                    new_y.append(r[3])
        self.last_stats = {"pos_cos": sum(cos) / max(1, len(cos)), "pairs": float(len(losses))}
        if self.memory_size > 0 and new_z:
            self._enqueue(torch.cat(new_z), torch.cat(new_y))
        if not losses:
            return z1.sum() * 0.0
        return torch.stack(losses).mean()

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor, y: torch.Tensor) -> None:
        keep = torch.randperm(z.shape[0], generator=self.sampler.generator)[: max(1, self.memory_size // 8)]
        z, y = z[keep.to(z.device)].float(), y[keep.to(y.device)]
        if self.memory is None or self.memory.device != z.device:
            self.memory, self.memory_label = z, y
        else:
            self.memory = torch.cat([z, self.memory])[: self.memory_size]
            self.memory_label = torch.cat([y, self.memory_label])[: self.memory_size]
