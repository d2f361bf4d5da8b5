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

Anchors (at most ``anchors`` per image and direction, class-balanced in expectation) and negatives come from the sampler, with
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


def boxes_tensor(boxes: list, device=None) -> torch.Tensor:
    """``(N, 5)`` rows ``(y0, x0, h, w, flip)`` of a list of :class:`Box`."""
    return torch.tensor([[b.y0, b.x0, b.h, b.w, float(b.flip)] for b in boxes], dtype=torch.float32, device=device)


def cell_coords_batched(bt: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`cell_coords` for ``N`` boxes at once: ``(N, fh * fw, 2)`` (row-major cells)."""
    fh, fw = size
    n = bt.shape[0]
    tx = (torch.arange(fw, device=bt.device, dtype=torch.float32) + 0.5) / fw
    ty = (torch.arange(fh, device=bt.device, dtype=torch.float32) + 0.5) / fh
    txb = torch.where(bt[:, 4:5] > 0.5, 1.0 - tx, tx)  # (N, fw)
    u = bt[:, 1:2] + txb * bt[:, 3:4]
    v = bt[:, 0:1] + ty * bt[:, 2:3]  # (N, fh)
    return torch.stack([u[:, None, :].expand(n, fh, fw), v[:, :, None].expand(n, fh, fw)], dim=-1).reshape(n, -1, 2)


def locate_batched(coords: torch.Tensor, bt: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image points ``coords (N, P, 2)`` → normalised ``grid_sample`` coordinates in the ``size`` grid of
    boxes ``bt (N, 5)``, and whether they lie inside its grid of cell centres (where bilinear sampling
    is exact)."""
    fh, fw = size
    tx = (coords[..., 0] - bt[:, None, 1]) / bt[:, None, 3]
    ty = (coords[..., 1] - bt[:, None, 0]) / bt[:, None, 2]
    tx = torch.where(bt[:, None, 4] > 0.5, 1.0 - tx, tx)
    jx, jy = tx * fw - 0.5, ty * fh - 0.5
    eps = 1e-4
    inside = (jx >= -eps) & (jx <= fw - 1 + eps) & (jy >= -eps) & (jy <= fh - 1 + eps)
    return torch.stack([2 * tx - 1, 2 * ty - 1], dim=-1), inside


def _lookup(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Nearest pixel of ``(N, H, W)`` maps at image coordinates ``coords (N, P, 2)`` → ``(N, P)``."""
    n, H, W = maps.shape
    ui = coords[..., 0].floor().long().clamp(0, W - 1)
    vi = coords[..., 1].floor().long().clamp(0, H - 1)
    return maps.reshape(n, -1).gather(1, vi * W + ui)


class PatchContrast(nn.Module):
    def __init__(self, in_dim: int, ignore_index: int, proj_dim: int = 64, temperature: float = 0.1,
                 anchors: int = 128, negatives_per_anchor: int = 256, neg_min_dist: float = 1.5,
                 memory_size: int = 0, sampler: Optional[RandomSampler] = None):
        super().__init__()
        self.head = ProjectionHead(in_dim, proj_dim)
        self.ignore_index = int(ignore_index)
        self.temperature, self.anchors, self.neg_k = float(temperature), int(anchors), int(negatives_per_anchor)
        self.neg_min_dist, self.memory_size = float(neg_min_dist), int(memory_size)
        self.sampler = sampler or RandomSampler()
        self.memory: Optional[torch.Tensor] = None  # (Q, D) detached, FIFO; saved as extra state
        self.memory_label: Optional[torch.Tensor] = None
        self.last_stats: dict[str, float] = {}

    def get_extra_state(self) -> dict:
        """The FIFO memory travels in ``state_dict`` (key ``..._extra_state``), so a resumed run sees
        the negatives the interrupted one had (under DDP each rank has its own; rank 0's is saved)."""
        if self.memory is None:
            return {"memory": None, "memory_label": None}
        return {"memory": self.memory.detach().cpu(), "memory_label": self.memory_label.detach().cpu()}

    def set_extra_state(self, state: dict) -> None:
        dev = next(self.parameters()).device
        mem, lab = state.get("memory"), state.get("memory_label")
        self.memory = None if mem is None else mem.to(dev)
        self.memory_label = None if lab is None else lab.to(dev)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, boxes: list, label: Optional[torch.Tensor] = None,
                conf: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``f1, f2 (n, C, fh, fw)`` student features of the two views; ``boxes`` from
        :func:`make_views`; ``label``/``conf (n, H, W)`` teacher pseudo-labels of the full images.
        Both directions (view 1 → 2 and 2 → 1) of all images are computed as one batch of 2n."""
        z1, z2 = self.head(f1), self.head(f2)
        n, d, fh, fw = z1.shape
        dev = z1.device
        za_map, zb_map = torch.cat([z1, z2]), torch.cat([z2, z1])  # (N, D, fh, fw), N = 2n
        b1, b2 = boxes_tensor([b[0] for b in boxes], dev), boxes_tensor([b[1] for b in boxes], dev)
        ba, bb = torch.cat([b1, b2]), torch.cat([b2, b1])
        ca = cell_coords_batched(ba, (fh, fw))  # (N, P, 2)
        loc, inside = locate_batched(ca, bb, (fh, fw))
        lab = (_lookup(torch.cat([label, label]), ca) if label is not None
               else torch.zeros(inside.shape, dtype=torch.long, device=dev))
        score = None if conf is None else 1.0 - _lookup(torch.cat([conf, conf]).float(), ca)
        idx, ok = self.sampler.anchors_batched(lab, score, inside, self.anchors)  # (N, A)
        za = za_map.flatten(2).transpose(1, 2).gather(1, idx[..., None].expand(-1, -1, d))  # (N, A, D)
        grid = loc.gather(1, idx[..., None].expand(-1, -1, 2)).unsqueeze(2)  # (N, A, 1, 2)
        zp = F.normalize(F.grid_sample(zb_map, grid, mode="bilinear", align_corners=False)[..., 0].transpose(1, 2), dim=-1)
        zb = zb_map.flatten(2).transpose(1, 2)  # (N, M, D)
        cb = cell_coords_batched(bb, (fh, fw))
        cs = ca.gather(1, idx[..., None].expand(-1, -1, 2))  # (N, A, 2)
        du = (cs[:, :, None, 0] - cb[:, None, :, 0]).abs() / (bb[:, 3] / fw)[:, None, None]
        dv = (cs[:, :, None, 1] - cb[:, None, :, 1]).abs() / (bb[:, 2] / fh)[:, None, None]
        s_pos = (za * zp).sum(-1, keepdim=True)
        sims, masks = [s_pos, torch.bmm(za, zb.transpose(1, 2))], [torch.zeros_like(ok[..., None]),
                                                                   torch.maximum(du, dv) >= self.neg_min_dist]
        lab_a = lab.gather(1, idx)
        if self.memory is not None and self.memory.numel() > 0:
            sims.append(za @ self.memory.t())
            if label is not None:  # memory negatives only with a different pseudo-label
                masks.append(lab_a[..., None] != self.memory_label.view(1, 1, -1))
            else:
                masks.append(torch.ones(*ok.shape, self.memory.shape[0], dtype=torch.bool, device=dev))
        sim = torch.cat(sims, -1)[ok] / self.temperature  # (anchors, 1 + M (+ Q))
        allowed = torch.cat(masks, -1)[ok]
        neg = self.sampler.negatives(sim.detach(), allowed, self.neg_k)
        pos = torch.zeros_like(allowed)
        pos[:, 0] = True
        self.last_stats = {"pos_cos": float(s_pos[ok].detach().mean()) if bool(ok.any()) else 0.0,
                           "anchors": float(ok.sum())}
        if self.memory_size > 0 and bool(ok.any()):
            self._enqueue(za[ok].detach(), lab_a[ok])
        if sim.shape[0] == 0:
            return z1.sum() * 0.0
        return info_nce(sim, pos, neg)

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor, y: torch.Tensor) -> None:
        keep = torch.randperm(z.shape[0], generator=self.sampler.generator)[: max(1, self.memory_size // 8)]
        z, y = z[keep.to(z.device)].float(), y[keep.to(y.device)]
        if self.memory is None or self.memory.device != z.device:
            self.memory, self.memory_label = z, y
        else:
            self.memory = torch.cat([z, self.memory])[: self.memory_size]
            self.memory_label = torch.cat([y, self.memory_label])[: self.memory_size]
