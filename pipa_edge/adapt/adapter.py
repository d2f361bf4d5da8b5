"""The Adapter: mean-teacher self-training + PiPa++ objectives around a plain segmenter.

Per iteration (one summed loss, one backward by the trainer)::

    pseudo-labels  <- EMA teacher on the clean target image
    x_s'           <- optional FDA style of x_s toward x_t (image-level adaptation)
    x_mix, y_mix   <- ClassMix(x_s', x_t; y_s, y_pseudo) + colour jitter + blur
    student forward on [x_s', x_mix (, x_t when distilling)]     (one concatenated forward)
    L = w_src CE(x_s') + w_mix sum(w_pix * CE(x_mix)) / |pixels|
      + r_pix(it) w_pix L_pixel(features, [y_s ; confident y_mix])
      + r_patch(it) w_patch L_patch(two views of x_t)               (one more student forward;
                                                  BN running stats: adapt.aux_bn_update)
      + r_temp(it) w_temp L_temporal(x_t, x_t-k)                     (video targets, temporal_contrast.py)
      + distillation(x_t)
    after the optimiser step: teacher <- EMA(student)

``r(it)`` is 0 before an objective's ``warmup_iters`` and ramps linearly to 1 over
``ramp_iters``. Heads, teacher and memory are attributes of this module, never of the segmenter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from pipa_edge.adapt.base import TrainMethod
from pipa_edge.adapt.bn import bn_running_stats
from pipa_edge.adapt.config import AdaptConfig
from pipa_edge.adapt.distill import FrozenTeacher, distill_loss
from pipa_edge.adapt.mix import classmix_masks, fda_source_to_target, mix, strong_augment
from pipa_edge.adapt.patch_contrast import PatchContrast, make_views
from pipa_edge.adapt.pixel_contrast import PixelContrast
from pipa_edge.adapt.pseudo import (PseudoLabels, confident_labels, downsample_labels, make_pseudo_labels,
                                    sample_map)
from pipa_edge.adapt.sampling import build_sampler
from pipa_edge.adapt.teacher import EMATeacher
from pipa_edge.models.segmenter import Segmenter


def ramp(it: int, warmup: int, ramp_iters: int) -> float:
    """0 before ``warmup``; then linear to 1 over ``ramp_iters`` (1 at once when 0)."""
    if it < warmup:
        return 0.0
    if ramp_iters <= 0:
        return 1.0
    return min(1.0, (it - warmup + 1) / ramp_iters)


def scaled_hw(hw, factor: float, minimum: int) -> tuple[int, int]:
    """``hw`` times ``factor``, rounded, at least ``minimum`` (the model's output stride) per side."""
    return tuple(max(minimum, int(round(d * factor))) for d in hw)


@dataclass
class MixedBatch:
    """The mixed (or, without mixing, the target) half of the student batch, ``(B, ...)`` each."""

    image: torch.Tensor  # strong-augmented mixed images (float, [0, 255])
    label: torch.Tensor  # source GT + teacher pseudo-labels (all of them)
    weight: torch.Tensor  # per-pixel CE weight (1 on source pixels)
    confident_label: torch.Tensor  # source GT + confident pseudo-labels, ignore elsewhere
    from_target: torch.Tensor  # 1 where the pixel comes from the target image
    mask: Optional[torch.Tensor]  # the ClassMix mask (None without mixing)


class Adapter(TrainMethod):
    def __init__(self, name: str, segmenter: Segmenter, cfg: Optional[AdaptConfig] = None):
        super().__init__(segmenter)
        self.name = name
        self.cfg = cfg = cfg or AdaptConfig()
        classes = segmenter.classes
        self.num_classes, self.ignore_index = classes.num_classes, classes.ignore_index
        self.teacher = EMATeacher(segmenter, cfg.teacher.alpha, cfg.teacher.ema_buffers)
        # the teacher is re-synced from the student at the first step (weights loaded after
        # construction, e.g. init_from); a resumed state_dict carries synced=1 and skips it
        self.register_buffer("teacher_synced", torch.zeros((), dtype=torch.uint8))
        sampler = build_sampler(cfg.sampler)
        pc, qc = cfg.pixel_contrast, cfg.patch_contrast
        self.pixel = self.patch = None
        if pc.enabled:
            self.pixel = PixelContrast(segmenter.feature_dim, self.num_classes, self.ignore_index, pc.proj_dim,
                                       pc.temperature, pc.anchors_per_class, pc.negatives_per_anchor, pc.min_valid,
                                       sampler)
        if qc.enabled:
            self.patch = PatchContrast(segmenter.feature_dim, self.ignore_index, qc.proj_dim, qc.temperature,
                                       qc.anchors, qc.negatives_per_anchor, qc.neg_min_dist, qc.memory_size, sampler)
        self.temporal = None  # video PiPa++: temporal contrast on target frame pairs (image_prev)
        if cfg.temporal_contrast.enabled:
            from pipa_edge.adapt.temporal_contrast import build_temporal

            self.temporal = build_temporal(cfg.temporal_contrast, segmenter.feature_dim, self.num_classes,
                                           self.ignore_index, sampler)
        self.kd_teacher = FrozenTeacher(cfg.distill.teacher_checkpoint) if cfg.distill.enabled else None

    # --------------------------------------------------------------------------------------- API
    def forward(self, batch: dict, it: int):  # so that DDP(adapter)(batch, it) works
        return self.training_step(batch, it)

    def after_optimizer_step(self, it: int) -> None:
        self.teacher.update(self.segmenter, it)

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith(("teacher.", "kd_teacher."))]

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, seg = self.cfg, self.segmenter
        self._sync_teacher()
        src_img = batch["source"]["image"].float()
        src_lab = batch["source"]["label"].long()
        tgt_img = batch["target"]["image"].float()
        B, H, W = src_lab.shape

        # 1. teacher pseudo-labels on the clean target image
        plc = cfg.pseudo_label
        pl = make_pseudo_labels(self.teacher(seg.normalize(tgt_img)), plc.threshold, plc.quality_weight,
                                plc.ignore_top, plc.ignore_bottom, plc.class_quantile)
        logs: dict[str, float] = {"pl_quality": float(pl.quality.mean())}

        # 2. image-level adaptation: FDA style on source, ClassMix, strong augmentation
        src_img = self._style_source(src_img, tgt_img)
        mixed = self._mix_target(src_img, src_lab, tgt_img, pl)

        # 3. student forward: source + mixed (+ clean target for distillation) in one batch
        parts = [src_img, mixed.image] + ([tgt_img] if self.kd_teacher is not None else [])
        out = seg.forward_features(seg.normalize(torch.cat(parts)))
        feats, low = out.features, out.logits_low
        logits = F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)
        loss_src = self.source_ce(logits[:B], src_lab)  # loss.class_weights apply here only
        loss_mix = (self._ce_pixels(logits[B:2 * B], mixed.label) * mixed.weight).mean()
        loss = cfg.source_weight * loss_src + plc.weight * loss_mix
        logs.update(loss_src=float(loss_src.detach()), loss_mix=float(loss_mix.detach()))

        # 4.-6. pixel contrast (source GT + confident target pseudo-labels), patch contrast (two views
        # of the target images), temporal contrast (frame pairs of video targets); each ramped in
        terms = (self._pixel_term(feats[:2 * B], low[:2 * B], src_lab, mixed, pl, it, logs),
                 self._patch_term(tgt_img, pl, it, logs),
                 self._temporal_term(batch["target"], pl, it, logs))
        for term in terms:
            if term is not None:
                loss = loss + term

        # 7. distillation from a larger adapted teacher on clean target images
        if self.kd_teacher is not None:
            d = cfg.distill
            loss_kd, kd_logs = distill_loss(logits[2 * B:], self.kd_teacher(batch["target"]["image"]), d.temperature,
                                            d.weight, d.pseudo_weight, d.threshold)
            loss = loss + loss_kd
            logs.update(kd_logs)

        logs["loss"] = float(loss.detach())
        return loss, logs

    # ------------------------------------------------------------------------------- internals
    def _sync_teacher(self) -> None:
        if int(self.teacher_synced) == 0:
            self.teacher.model.load_state_dict(self.segmenter.state_dict())
            self.teacher_synced.fill_(1)

    def _ce_pixels(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), label, ignore_index=self.ignore_index, reduction="none")

    def _hardness(self, logits_low: torch.Tensor, lab_low: torch.Tensor) -> torch.Tensor:
        """Per-cell student CE (detached) w.r.t. the downsampled labels; 0 on ignore cells."""
        safe = torch.where(lab_low == self.ignore_index, torch.zeros_like(lab_low), lab_low)
        ce = F.cross_entropy(logits_low.detach().float(), safe, reduction="none")
        return torch.where(lab_low == self.ignore_index, torch.zeros_like(ce), ce)

    def _style_source(self, src_img: torch.Tensor, tgt_img: torch.Tensor) -> torch.Tensor:
        """``mix.source_style: fda``: each source image takes a random target image's low frequencies
        with probability ``fda_p``."""
        mc = self.cfg.mix
        if mc.source_style != "fda":
            return src_img
        b = src_img.shape[0]
        styled = fda_source_to_target(src_img, tgt_img[torch.randperm(tgt_img.shape[0])], mc.fda_beta)
        use = (torch.rand(b) < mc.fda_p).to(src_img.device).view(b, 1, 1, 1)
        return torch.where(use, styled, src_img)

    def _mix_target(self, src_img: torch.Tensor, src_lab: torch.Tensor, tgt_img: torch.Tensor,
                    pl: PseudoLabels) -> MixedBatch:
        """ClassMix (half the source classes pasted onto the target) + strong augmentation."""
        mc = self.cfg.mix
        ones = torch.ones_like(pl.weight)
        mask = None
        if mc.enabled:
            mask = classmix_masks(src_lab, self.ignore_index)
            image = mix(mask, src_img, tgt_img)
            label, weight = mix(mask, src_lab, pl.label), mix(mask, ones, pl.weight)
            conf_label = mix(mask, src_lab, confident_labels(pl, self.ignore_index))
            from_target = mix(mask, torch.zeros_like(ones), ones)
        else:
            image, label, weight = tgt_img, pl.label, pl.weight
            conf_label, from_target = confident_labels(pl, self.ignore_index), ones
        image = strong_augment(image, mc.color_jitter, mc.color_jitter_p, mc.blur_p)
        return MixedBatch(image, label, weight, conf_label, from_target, mask)

    def _pixel_term(self, feats: torch.Tensor, low: torch.Tensor, src_lab: torch.Tensor, mixed: MixedBatch,
                    pl: PseudoLabels, it: int, logs: dict) -> Optional[torch.Tensor]:
        """Weighted pixel contrast on the source and mixed halves (``feats``/``low``: ``(2B, ...)``)."""
        pc = self.cfg.pixel_contrast
        r = ramp(it, pc.warmup_iters, pc.ramp_iters)
        if self.pixel is None or r <= 0:
            return None
        hw = tuple(low.shape[-2:])
        lab_low = downsample_labels(torch.cat([src_lab, mixed.confident_label]), hw, self.num_classes,
                                    self.ignore_index, self.pixel.min_valid)
        score = self._hardness(low, lab_low)
        if self.cfg.sampler.score == "confidence":  # target cells: 1 - teacher confidence
            ones = torch.ones_like(pl.weight)
            conf = mix(mixed.mask, ones, pl.conf) if mixed.mask is not None else pl.conf
            conf_low = sample_map(torch.cat([torch.ones_like(pl.conf), conf]), hw, "bilinear")
            tgt_low = sample_map(torch.cat([torch.zeros_like(mixed.from_target), mixed.from_target]), hw,
                                 "bilinear") > 0.5
            score = torch.where(tgt_low, 1.0 - conf_low, score)
        loss_pix = self.pixel(feats, lab_low, score)
        logs["loss_pixel"] = float(loss_pix.detach())
        return r * pc.weight * loss_pix

    def _patch_term(self, tgt_img: torch.Tensor, pl: PseudoLabels, it: int, logs: dict) -> Optional[torch.Tensor]:
        """Weighted patch contrast on two overlapping views of (the first ``num_images``) target images."""
        qc, seg = self.cfg.patch_contrast, self.segmenter
        r = ramp(it, qc.warmup_iters, qc.ramp_iters)
        if self.patch is None or r <= 0:
            return None
        b = tgt_img.shape[0]
        n = b if qc.num_images <= 0 else min(b, qc.num_images)
        out_hw = scaled_hw(tuple(tgt_img.shape[-2:]), qc.view_size, seg.output_stride)
        v1, v2, boxes = make_views(tgt_img[:n], out_hw, qc.scale, qc.iou)
        with bn_running_stats(seg, self.cfg.aux_bn_update):
            vo = seg.forward_features(seg.normalize(torch.cat([v1, v2])))
        loss_patch = self.patch(vo.features[:n], vo.features[n:], boxes, pl.label[:n], pl.conf[:n])
        logs["loss_patch"] = float(loss_patch.detach())
        logs["patch_pos_cos"] = self.patch.last_stats.get("pos_cos", 0.0)
        return r * qc.weight * loss_patch

    def _temporal_term(self, target: dict, pl: PseudoLabels, it: int, logs: dict) -> Optional[torch.Tensor]:
        """Weighted temporal contrast on ``(frame t, frame t-k)`` pairs (video target batches only)."""
        tc = self.cfg.temporal_contrast
        r = ramp(it, tc.warmup_iters, tc.ramp_iters)
        if self.temporal is None or r <= 0 or "image_prev" not in target:
            return None
        loss_t, t_logs = self.temporal.step(self.segmenter, self.teacher, target, pl.label, pl.conf,
                                            self.cfg.aux_bn_update, self.cfg.sampler.score == "confidence")
        logs.update(t_logs)
        return r * tc.weight * loss_t
