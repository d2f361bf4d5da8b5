"""Temporal contrast: the same scene point in frames t and t-k is a positive pair (PiPa++ video term).

Shapes: student decoder features of frame t ``f_t (B, C, h, w)`` and of frame t-k ``f_p (B, C, h, w)``
(student, or EMA teacher with ``key_encoder: teacher``), flow ``F (B, 2, H, W)`` **t → t-k** at input
resolution with its validity mask ``V (B, H, W)`` (forward-backward consistent, in frame; see
:mod:`pipa_edge.adapt.flow`), pseudo-labels ``y_t, y_p (B, H, W)`` (teacher argmax; ignore = unknown)::

    z_t = normalize(g(f_t)),  z_p = normalize(g(f_p))            (B, D, h, w)   g: training-only head
    F'  = resize(F, (h, w)) (vectors rescaled);  V' = mean_cell(V) >= min_valid
    z+  = normalize(warp(z_p, F'))                                (B, D, h, w)   z_p at the corresponding point
    y'_t = majority_vote(y_t),  y'_p = majority_vote(y_p),  y+ = warp_nearest(y'_p, F')
    anchors a: cells with V'_a, y'_t(a) known (and y'_t(a) == y+(a) when label_consistent),
               class-balanced by the sampler (task-smart: hardest = lowest cos(z_t, z+) or teacher conf)
    candidates c = [z+_a for the anchors (A)] ++ [a class-balanced pool of z_p cells (M)]
    s_ac = z_t,a . z_c / tau
    P_a = {its own z+_a},   N_a = sampler.negatives(s, label(c) != y'_t(a), k)
    L = mean_a -log( e^{s_a,a+} / (e^{s_a,a+} + sum_{n in N_a} e^{s_an}) )          (sampling.info_nce)

The gradient reaches the student through ``z_t`` (and ``z_p`` with the student key encoder). The
head lives on the Adapter; the exported segmenter is unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.adapt.bn import bn_running_stats
from pipa_edge.adapt.flow import batch_flow, resize_flow_torch, warp_torch
from pipa_edge.adapt.pixel_contrast import ProjectionHead
from pipa_edge.adapt.pseudo import downsample_labels
from pipa_edge.adapt.sampling import RandomSampler, info_nce
from pipa_edge.data.flow import DISFlow


def temporal_info_nce(za: torch.Tensor, zpos: torch.Tensor, ya: torch.Tensor, zpool: torch.Tensor,
                      ypool: torch.Tensor, temperature: float, sampler: Optional[RandomSampler] = None,
                      negatives_per_anchor: int = 256) -> torch.Tensor:
    """Core loss on flat embeddings: anchors ``za (A, D)`` with positives ``zpos (A, D)`` and labels
    ``ya (A,)``; extra negative candidates ``zpool (M, D)`` with labels ``ypool (M,)``.

    Candidate ``c`` is a negative of anchor ``a`` only when its label differs from ``ya[a]`` (the
    positives of the other anchors carry their anchor's label).
    """
    sampler = sampler or RandomSampler()
    cand = torch.cat([zpos, zpool])  # (A + M, D)
    yc = torch.cat([ya, ypool])
    sim = za @ cand.t() / float(temperature)  # (A, A + M)
    a = za.shape[0]
    pos = torch.zeros_like(sim, dtype=torch.bool)
    pos[:, :a] = torch.eye(a, dtype=torch.bool, device=sim.device)
    allowed = (ya.view(-1, 1) != yc.view(1, -1)) & ~pos
    neg = sampler.negatives(sim.detach(), allowed, negatives_per_anchor)
    return info_nce(sim, pos, neg)


class TemporalContrast(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, ignore_index: int, proj_dim: int = 64,
                 temperature: float = 0.1, anchors_per_class: int = 64, pool_per_class: int = 64,
                 negatives_per_anchor: int = 256, min_valid: float = 0.5, label_consistent: bool = True,
                 sampler: Optional[RandomSampler] = None, key_encoder: str = "student", dis_preset: str = "medium"):
        super().__init__()
        self.head = ProjectionHead(in_dim, proj_dim)
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.temperature = float(temperature)
        self.anchors_per_class, self.pool_per_class = int(anchors_per_class), int(pool_per_class)
        self.negatives_per_anchor = int(negatives_per_anchor)
        self.min_valid, self.label_consistent = float(min_valid), bool(label_consistent)
        self.sampler = sampler or RandomSampler()
        self._pool = RandomSampler(self.sampler.generator)
        self.key_encoder = key_encoder  # who embeds frame t-k: "student" or "teacher" (no gradient)
        self.dis_preset = dis_preset  # OpenCV DIS preset for flow t → t-k when the batch carries none
        self._flow: Optional[DISFlow] = None  # created on the first batch without flow
        self.last_stats: dict[str, float] = {}

    def _low(self, label: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if label.shape[-2:] == hw:
            return label.long()
        return downsample_labels(label.long(), hw, self.num_classes, self.ignore_index, self.min_valid)

    def forward(self, f_t: torch.Tensor, f_prev: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor,
                label_t: torch.Tensor, label_prev: torch.Tensor, score: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """See the module docstring. ``score (B, h, w)`` overrides the default hardness ``1 - cos(z_t, z+)``."""
        b, _, h, w = f_t.shape
        z_t, z_p = self.head(f_t), self.head(f_prev)  # (B, D, h, w), float32, unit norm
        flow_low = resize_flow_torch(flow.float(), (h, w))
        v = valid.float().unsqueeze(1)
        v_low = (F.adaptive_avg_pool2d(v, (h, w)) if v.shape[-2:] != (h, w) else v)[:, 0] >= self.min_valid - 1e-6
        # the corresponding point must also be inside the low-resolution grid
        inside = warp_torch(torch.ones_like(v_low, dtype=torch.float32).unsqueeze(1), flow_low)[:, 0] > 0.999
        z_pos = F.normalize(warp_torch(z_p, flow_low), dim=1)
        y_t, y_p = self._low(label_t, (h, w)), self._low(label_prev, (h, w))
        y_pos = warp_torch(y_p.unsqueeze(1).float(), flow_low, mode="nearest")[:, 0].long()
        ok = v_low & inside & (y_t != self.ignore_index)
        if self.label_consistent:
            ok &= y_pos == y_t
        y_anchor = torch.where(ok, y_t, torch.full_like(y_t, self.ignore_index))
        if score is None:
            score = 1.0 - (z_t * z_pos).sum(dim=1).detach()
        flat = lambda z: z.permute(0, 2, 3, 1).reshape(b * h * w, -1)  # noqa: E731
        zt_f, zpos_f, zp_f = flat(z_t), flat(z_pos), flat(z_p)
        a_idx = self.sampler.anchors(y_anchor.reshape(-1), score.reshape(-1), self.anchors_per_class,
                                     self.ignore_index, self.num_classes)
        self.last_stats = {"anchors": float(a_idx.numel()), "valid_frac": float(v_low.float().mean()),
                           "consistent_frac": float(ok.float().mean())}
        if a_idx.numel() < 1:
            return z_t.sum() * 0.0
        yp_flat = y_p.reshape(-1)
        p_idx = self._pool.anchors(yp_flat, None, self.pool_per_class, self.ignore_index, self.num_classes)
        ya = y_t.reshape(-1)[a_idx]
        with torch.no_grad():
            self.last_stats["pos_cos"] = float((zt_f[a_idx] * zpos_f[a_idx]).sum(1).mean())
        return temporal_info_nce(zt_f[a_idx], zpos_f[a_idx], ya, zp_f[p_idx], yp_flat[p_idx], self.temperature,
                                 self.sampler, self.negatives_per_anchor)

    def step(self, segmenter, teacher, target: dict, pl_label: torch.Tensor, pl_conf: Optional[torch.Tensor] = None,
             aux_bn_update: bool = True, confidence_score: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        """The Adapter's temporal term on a target batch ``{"image", "image_prev", ["flow", "flow_valid"]}``.

        ``segmenter`` is the student, ``teacher`` its :class:`~pipa_edge.adapt.teacher.EMATeacher`;
        ``pl_label``/``pl_conf``: the teacher's pseudo-labels of frame t (already computed by the
        adapter). Flow missing from the batch is computed with OpenCV DIS (``dis_preset``) on the
        (augmented) uint8 frames. ``aux_bn_update``: the student forward moves the BatchNorm running
        statistics; ``confidence_score``: hardness = 1 - teacher confidence (``sampler.score``).
        Returns the unweighted loss and its logs.
        """
        seg = segmenter
        x_t, x_p = target["image"], target["image_prev"]
        if "flow" in target:
            flow = target["flow"].float()
            valid = target["flow_valid"].bool() if "flow_valid" in target else torch.ones_like(flow[:, 0], dtype=torch.bool)
        else:
            if self._flow is None:
                self._flow = DISFlow(self.dis_preset)
            flow, valid = batch_flow(x_t, x_p, self._flow)
        n = x_t.shape[0]
        t_prev = teacher.forward_features(seg.normalize(x_p.float()))
        y_prev = t_prev.logits_low.argmax(dim=1)
        with bn_running_stats(seg, aux_bn_update):
            if self.key_encoder == "teacher":
                f_t = seg.forward_features(seg.normalize(x_t.float())).features
                f_p = t_prev.features.detach()
            else:
                out = seg.forward_features(seg.normalize(torch.cat([x_t, x_p]).float()))
                f_t, f_p = out.features[:n], out.features[n:]
        score = None
        if confidence_score and pl_conf is not None:
            score = 1.0 - F.adaptive_avg_pool2d(pl_conf.float().unsqueeze(1), f_t.shape[-2:])[:, 0]
        loss = self(f_t, f_p, flow, valid, pl_label, y_prev, score)
        st = self.last_stats
        return loss, {"loss_temporal": float(loss.detach()), "temporal_pos_cos": st.get("pos_cos", 0.0),
                      "temporal_valid": st.get("valid_frac", 0.0)}


def build_temporal(cfg, feature_dim: int, num_classes: int, ignore_index: int, sampler) -> TemporalContrast:
    """From a :class:`~pipa_edge.adapt.temporal_config.TemporalContrastConfig`."""
    return TemporalContrast(feature_dim, num_classes, ignore_index, cfg.proj_dim, cfg.temperature,
                            cfg.anchors_per_class, cfg.pool_per_class, cfg.negatives_per_anchor, cfg.min_valid,
                            cfg.label_consistent, sampler, cfg.key_encoder, cfg.dis_preset)
