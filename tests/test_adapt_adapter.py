"""The Adapter as a TrainMethod: gradients from every objective, plain segmenter, EMA, mixing, RCS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipa_edge.adapt import AdaptConfig, build_adapter
from pipa_edge.adapt.mix import classmix_masks, color_jitter, fda_source_to_target, gaussian_blur, mix
from pipa_edge.adapt.rcs import RareClassSampler, class_pixel_counts, rcs_class_probs
from pipa_edge.data.classes import ClassSet
from pipa_edge.errors import ConfigError
from pipa_edge.models.segmenter import SegOutput, Segmenter
from pipa_edge.adapt.base import TrainMethod
from pipa_edge.train.method import build_method

CLS4 = ClassSet("t4", ("a", "b", "c", "d"), ((0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)))


class TinySeg(Segmenter):
    """Encoder (two stride-2 convs, BN) + 1x1 classifier: output stride 4, 8 feature channels."""

    arch, feature_dim, output_stride = "tiny", 8, 4

    def __init__(self):
        super().__init__(CLS4)
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.classifier = nn.Conv2d(8, 4, 1)

    def forward_features(self, x):
        f = self.encoder(x)
        return SegOutput(f, self.classifier(f))


def _batch(b=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 4, (b, h // 8, w // 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    lab[:, :2] = 255
    return {"source": {"image": torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g), "label": lab},
            "target": {"image": torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)}}


def _cfg(**sections):
    return AdaptConfig.model_validate(sections)


def test_build_adapter_names_and_plain_segmenter():
    seg = TinySeg()
    keys = set(seg.state_dict())
    cfg = _cfg(pixel_contrast={"enabled": True}, patch_contrast={"enabled": True})
    pipa = build_method("pipa", seg, cfg)
    assert isinstance(pipa, TrainMethod) and pipa.pixel is not None and pipa.patch is not None
    assert set(seg.state_dict()) == keys  # nothing training-only registered on the segmenter
    mt = build_adapter("mean_teacher", TinySeg(), cfg)
    assert mt.pixel is None and mt.patch is None  # mean teacher ignores the contrastive sections
    ids = {id(p) for p in pipa.trainable_parameters()}
    assert not ids & {id(p) for p in pipa.teacher.parameters()}
    assert ids >= {id(p) for p in seg.parameters()} | {id(p) for p in pipa.pixel.parameters()}
    with pytest.raises(ConfigError):
        build_adapter("nope", TinySeg(), cfg)
    with pytest.raises(ConfigError):
        build_adapter("pipa", TinySeg(), {"pixel_contrast": {"enabled": "maybe"}})


@pytest.mark.parametrize("objective", ["source", "mix", "pixel", "patch"])
def test_every_objective_reaches_the_student_encoder(objective):
    torch.manual_seed(0)
    cfg = _cfg(source_weight=float(objective == "source"),
               pseudo_label={"weight": float(objective == "mix"), "threshold": 0.3},
               pixel_contrast={"enabled": objective == "pixel", "weight": 1.0},
               patch_contrast={"enabled": objective == "patch", "weight": 1.0, "view_size": 1.0})
    ad = build_adapter("pipa", TinySeg(), cfg)
    ad.train()
    loss, logs = ad.training_step(_batch(), it=0)
    assert torch.isfinite(loss)
    loss.backward()
    enc = ad.segmenter.encoder[0].weight.grad
    assert enc is not None and enc.abs().sum() > 0, objective
    assert all(p.grad is None for p in ad.teacher.parameters())
    key = {"source": "loss_src", "mix": "loss_mix", "pixel": "loss_pixel", "patch": "loss_patch"}[objective]
    assert logs[key] > 0


def test_training_loop_ema_warmup_and_sync():
    torch.manual_seed(0)
    cfg = _cfg(teacher={"alpha": 0.9}, pixel_contrast={"enabled": True, "warmup_iters": 2},
               patch_contrast={"enabled": True, "warmup_iters": 1, "memory_size": 32},
               sampler={"kind": "task_smart"}, mix={"source_style": "fda", "fda_p": 1.0})
    seg = TinySeg()
    ad = build_adapter("pipa", seg, cfg)
    with torch.no_grad():  # weights loaded after construction (init_from) must reach the teacher
        for p in seg.parameters():
            p.add_(1.0)
    ad.train()
    opt = torch.optim.SGD(ad.trainable_parameters(), lr=0.01)
    for it in range(3):
        loss, logs = ad.training_step(_batch(seed=it), it)
        if it == 0:
            assert "loss_pixel" not in logs and "loss_patch" not in logs  # warm-up: off
            # synced at the first step (parameters; BN stats moved on with the student's forward)
            assert all(torch.equal(pt, ps) for pt, ps in zip(ad.teacher.model.parameters(), seg.parameters()))
        if it == 2:
            assert "loss_pixel" in logs and "loss_patch" in logs
        opt.zero_grad()
        loss.backward()
        opt.step()
        before = [p.clone() for p in ad.teacher.model.parameters()]
        ad.after_optimizer_step(it)
        a = min(1 - 1 / (it + 1), 0.9)
        for pb, pt, ps in zip(before, ad.teacher.model.parameters(), seg.parameters()):
            assert torch.allclose(pt, a * pb + (1 - a) * ps, atol=1e-6)
    assert int(ad.teacher_synced) == 1 and "teacher_synced" in ad.state_dict()


def test_classmix_pastes_half_the_source_classes():
    lab = torch.tensor([[[0, 0, 1, 1], [2, 2, 3, 255]]])
    g = torch.Generator().manual_seed(0)
    m = classmix_masks(lab, 255, g)
    assert m.shape == (1, 1, 2, 4)
    chosen = torch.unique(lab[m[:, 0] > 0.5])
    assert chosen.numel() == 2 and 255 not in chosen.tolist()  # ceil(4 / 2) classes, never ignore
    a, b = torch.ones(1, 3, 2, 4), torch.zeros(1, 3, 2, 4)
    assert torch.equal(mix(m, a, b)[0, 0], m[0, 0])
    pl = torch.full_like(lab, 9)
    ml = mix(m, lab, pl)
    assert torch.equal(ml[m[:, 0] > 0.5], lab[m[:, 0] > 0.5]) and (ml[m[:, 0] < 0.5] == 9).all()


def test_photometric_and_fda():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 16, 16) * 255
    j = color_jitter(img, 0.5, 1.0)
    assert j.shape == img.shape and j.min() >= 0 and j.max() <= 255 and not torch.equal(j, img)
    bl = gaussian_blur(img, 1.0)
    assert bl.std() < img.std()  # blur removes high-frequency energy
    xs = torch.linspace(0, 6.28, 16)
    smooth = (128 + 20 * torch.sin(xs).view(1, 1, 1, 16) * torch.cos(xs).view(1, 1, 16, 1)).repeat(2, 3, 1, 1)
    dark = 40 + torch.rand(2, 3, 16, 16) * 10
    out = fda_source_to_target(smooth, dark, beta=0.1)
    # the DC component (mean brightness) is the target's, the phase (layout) the source's
    assert torch.allclose(out.mean(dim=(2, 3)), dark.mean(dim=(2, 3)), atol=3.0)
    assert out.shape == img.shape and (out - out.mean(dim=(2, 3), keepdim=True)).abs().max() > 10


class _LabDS:
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": None, "label": self.labels[i]}


def test_rare_class_sampling_prefers_rare_classes(tmp_path):
    labels = [np.zeros((10, 10), np.uint8) for _ in range(9)]
    rare = np.zeros((10, 10), np.uint8)
    rare[:5] = 2  # class 2 only in image 9
    labels.append(rare)
    labels[0][0, 0] = 255
    ds = _LabDS(labels)
    cache = tmp_path / "rcs.json"
    counts = class_pixel_counts(ds, 3, cache)
    assert counts.shape == (10, 3) and counts[9, 2] == 50 and counts[0, 0] == 99
    assert cache.is_file()
    assert np.array_equal(class_pixel_counts(ds, 3, cache), counts)  # read back from the cache
    p = rcs_class_probs(counts, temperature=0.1)
    assert p[1] == 0 and p[2] > p[0]
    s = RareClassSampler(counts=counts, temperature=0.1, min_pixels=10, num_samples=400, seed=0)
    idx = list(s)
    assert len(idx) == 400 and set(idx) <= set(range(10))
    assert idx.count(9) > 400 * 0.5  # the only image with the rare class dominates
    assert list(RareClassSampler(counts=counts, temperature=0.1, num_samples=50, seed=0)) == idx[:50]


def test_distillation_from_a_checkpoint(tmp_path):
    from pipa_edge.data.classes import get_class_set
    from pipa_edge.models.io import save_segmenter
    from pipa_edge.models.zoo import build_segmenter

    torch.manual_seed(0)
    cs = get_class_set("camvid11")
    big = build_segmenter("segformer-b0", cs)
    ckpt = save_segmenter(tmp_path / "teacher.pt", big)
    cfg = _cfg(distill={"enabled": True, "teacher_checkpoint": str(ckpt), "threshold": 0.0})
    ad = build_adapter("mean_teacher", build_segmenter("segformer-b0", cs), cfg)
    ad.train()
    assert not ad.kd_teacher.model.training
    b = _batch(h=32, w=32)
    b["source"]["label"] = b["source"]["label"].clamp(max=10)
    loss, logs = ad.training_step(b, 0)
    loss.backward()
    assert logs["loss_kd"] > 0 and logs["loss_kd_pl"] > 0
    assert all(p.grad is None for p in ad.kd_teacher.parameters())
    assert ad.segmenter.encoder.patch_embed1.proj.weight.grad.abs().sum() > 0
    assert not {id(p) for p in ad.kd_teacher.parameters()} & {id(p) for p in ad.trainable_parameters()}
