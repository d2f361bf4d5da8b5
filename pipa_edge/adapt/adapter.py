"""The Adapter: mean-teacher self-training + PiPa++ objectives around a plain segmenter.

Per iteration (one summed loss, one backward by the trainer)::

    pseudo-labels  <- EMA teacher on the clean target image
    (adapt.target_bn_stats: no-grad student forward of x_t, moves only the BN running statistics)
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

from typing import Optional

import torch
import torch.nn.functional as F

from pipa_edge.adapt.bn import bn_running_stats
from pipa_edge.adapt.config import AdaptConfig
from pipa_edge.adapt.distill import FrozenTeacher, distill_loss
from pipa_edge.adapt.mix import classmix_masks, fda_source_to_target, mix, strong_augment
from pipa_edge.adapt.patch_contrast import PatchContrast, make_views
from pipa_edge.adapt.pixel_contrast import PixelContrast
from pipa_edge.adapt.pseudo import confident_labels, downsample_labels, make_pseudo_labels, sample_map
from pipa_edge.adapt.sampling import build_sampler
from pipa_edge.adapt.teacher import EMATeacher
from pipa_edge.models.segmenter import Segmenter
from pipa_edge.train.method import TrainMethod


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


class Adapter(TrainMethod):
    def __init__(self, name: str, segmenter: Segmenter, cfg: Optional[AdaptConfig] = None):
        super().__init__(segmenter)
        self.name = name
        self.cfg = cfg = cfg or AdaptConfig()
        classes = segmenter.classes
        self.num_classes, self.ignore_index = classes.num_classes, classes.ignore_index
        t = cfg.teacher
        self.teacher = EMATeacher(segmenter, t.alpha, t.ema_buffers, t.eval_mode)
        # the teacher is re-synced from the student at the first step (weights loaded after
        # construction, e.g. init_from); a resumed state_dict carries synced=1 and skips it
        self.register_buffer("teacher_synced", torch.zeros((), dtype=torch.uint8))
        self.generator = None  # CPU torch.Generator for mixing/sampling (None = global RNG)
        sampler = build_sampler(cfg.sampler)
        pc, qc = cfg.pixel_contrast, cfg.patch_contrast
        self.pixel = self.patch = None
        if pc.enabled:
            self.pixel = PixelContrast(segmenter.feature_dim, self.num_classes, self.ignore_index, pc.proj_dim,
                                       pc.temperature, pc.anchors_per_class, pc.negatives_per_anchor, pc.min_valid,
                                       sampler, pc.min_purity)
        if qc.enabled:
            self.patch = PatchContrast(segmenter.feature_dim, self.ignore_index, qc.proj_dim, qc.temperature,
                                       qc.anchors, qc.negatives_per_anchor, qc.neg_min_dist, qc.memory_size,
                                       qc.filter_memory_by_label, sampler)
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

    def training_step(self, batch: dict, it: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, seg, g = self.cfg, self.segmenter, self.generator
        self._sync_teacher()
        src_img = batch["source"]["image"].float()
        src_lab = batch["source"]["label"].long()
        tgt_img = batch["target"]["image"].float()
        B, H, W = src_lab.shape
        logs: dict[str, float] = {}

        # 1. teacher pseudo-labels on the clean target image
        t_logits = self.teacher(seg.normalize(tgt_img))
        plc = cfg.pseudo_label
        pl = make_pseudo_labels(t_logits, plc.threshold, plc.quality_weight, plc.ignore_top, plc.ignore_bottom,
                                plc.class_quantile)
        logs["pl_quality"] = float(pl.quality.mean())
        if cfg.target_bn_stats:  # BN running stats see a one-domain batch (no graph: nothing saved for backward)
            with torch.no_grad():
                x = tgt_img if cfg.target_bn_images == "target" else src_img
                if cfg.target_bn_scale != 1.0:
                    x = F.interpolate(x, size=scaled_hw(x.shape[-2:], cfg.target_bn_scale, seg.output_stride),
                                      mode="bilinear", align_corners=False)
                seg.forward_features(seg.normalize(x))

        # 2. image-level adaptation: FDA style on source, ClassMix, strong augmentation
        if cfg.mix.source_style == "fda":
            styled = fda_source_to_target(src_img, tgt_img[torch.randperm(tgt_img.shape[0], generator=g)], cfg.mix.fda_beta)
            use = (torch.rand(B, generator=g) < cfg.mix.fda_p).to(src_img.device).view(B, 1, 1, 1)
            src_img = torch.where(use, styled, src_img)
        ones = torch.ones_like(pl.weight)
        if cfg.mix.enabled:
            mask = classmix_masks(src_lab, self.ignore_index, g)
            mix_img = mix(mask, src_img, tgt_img)
            mix_lab, mix_w = mix(mask, src_lab, pl.label), mix(mask, ones, pl.weight)
            mix_conf_lab = mix(mask, src_lab, confident_labels(pl, self.ignore_index))
            from_target = mix(mask, torch.zeros_like(ones), ones)
        else:
            mix_img, mix_lab, mix_w = tgt_img, pl.label, pl.weight
            mix_conf_lab, from_target = confident_labels(pl, self.ignore_index), ones
        mix_img = strong_augment(mix_img, cfg.mix.color_jitter, cfg.mix.color_jitter_p, cfg.mix.blur_p, g)

        # 3. student forward: source + mixed (+ clean target for distillation) in one batch
        parts = [src_img, mix_img] + ([tgt_img] if self.kd_teacher is not None else [])
        if cfg.concat_forward:
            out = seg.forward_features(seg.normalize(torch.cat(parts)))
            feats, low = out.features, out.logits_low
        else:
            outs = [seg.forward_features(seg.normalize(p)) for p in parts]
            feats, low = torch.cat([o.features for o in outs]), torch.cat([o.logits_low for o in outs])
        logits = F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)
        loss_src = self.source_ce(logits[:B], src_lab)  # loss.class_weights apply here only
        loss_mix = (self._ce_pixels(logits[B:2 * B], mix_lab) * mix_w).mean()
        loss = cfg.source_weight * loss_src + plc.weight * loss_mix
        logs.update(loss_src=float(loss_src.detach()), loss_mix=float(loss_mix.detach()))

        # 4. pixel contrast on source GT + confident target pseudo-labels
        r = ramp(it, cfg.pixel_contrast.warmup_iters, cfg.pixel_contrast.ramp_iters)
        if self.pixel is not None and r > 0:
            n = 2 * B if cfg.pixel_contrast.use_target else B
            lab = torch.cat([src_lab, mix_conf_lab])[:n]
            lab_low = downsample_labels(lab, tuple(low.shape[-2:]), self.num_classes, self.ignore_index,
                                        self.pixel.min_valid, self.pixel.min_purity)
            score = self._hardness(low[:n], lab_low)
            if cfg.sampler.score == "confidence":
                conf_low = sample_map(torch.cat([torch.ones_like(pl.conf), mix(mask, ones, pl.conf)
                                                 if cfg.mix.enabled else pl.conf])[:n], tuple(low.shape[-2:]), "bilinear")
                tgt_low = sample_map(torch.cat([torch.zeros_like(from_target), from_target])[:n], tuple(low.shape[-2:]),
                                     "bilinear") > 0.5
                score = torch.where(tgt_low, 1.0 - conf_low, score)
            loss_pix = self.pixel(feats[:n], lab_low, score)
            loss = loss + r * cfg.pixel_contrast.weight * loss_pix
            logs["loss_pixel"] = float(loss_pix.detach())

        # 5. patch contrast on two overlapping views of the target images
        qc = cfg.patch_contrast
        r = ramp(it, qc.warmup_iters, qc.ramp_iters)
        if self.patch is not None and r > 0:
            n = B if qc.num_images <= 0 else min(B, qc.num_images)
            out_hw = scaled_hw((H, W), qc.view_size, seg.output_stride)
            v1, v2, boxes = make_views(tgt_img[:n], out_hw, qc.scale, qc.iou, qc.flip, qc.photometric, g)
            with bn_running_stats(seg, cfg.aux_bn_update):
                vo = seg.forward_features(seg.normalize(torch.cat([v1, v2])))
            loss_patch = self.patch(vo.features[:n], vo.features[n:], boxes, pl.label[:n], pl.conf[:n])
            loss = loss + r * qc.weight * loss_patch
            logs["loss_patch"] = float(loss_patch.detach())
            logs["patch_pos_cos"] = self.patch.last_stats.get("pos_cos", 0.0)

        # 6. temporal contrast on (frame t, frame t-k) target pairs (video batches only)
        tc = cfg.temporal_contrast
        r = ramp(it, tc.warmup_iters, tc.ramp_iters)
        if self.temporal is not None and r > 0 and "image_prev" in batch["target"]:
            from pipa_edge.adapt.temporal_contrast import temporal_step

            loss_t, t_logs = temporal_step(self, batch["target"], pl.label, pl.conf)
            loss = loss + r * tc.weight * loss_t
            logs.update(t_logs)

        # 7. distillation from a larger adapted teacher on clean target images
        if self.kd_teacher is not None:
            d = cfg.distill
            loss_kd, kd_logs = distill_loss(logits[2 * B:], self.kd_teacher(batch["target"]["image"]), d.temperature,
                                            d.weight, d.pseudo_weight, d.threshold)
            loss = loss + loss_kd
            logs.update(kd_logs)

        logs["loss"] = float(loss.detach())
        return loss, logs
