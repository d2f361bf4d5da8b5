"""Precise BN / AdaBN (pipa_edge.train.precise_bn): the formula, the trainer option, config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipa_edge.data.build import build_eval_dataset
from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError
from pipa_edge.models.io import load_segmenter
from pipa_edge.train.config import load_train_config
from pipa_edge.train.precise_bn import bn_layers, precise_bn_images, recompute_bn_stats
from pipa_edge.train.toydata import make_folder_dataset
from pipa_edge.train.trainer import train


def _toy():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    return conv, nn.Sequential(conv, nn.BatchNorm2d(4, momentum=0.1), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_running_stats_are_the_plain_average_of_batch_statistics():
    conv, model = _toy()
    model.eval()
    bn = model[1]
    batches = [torch.randn(3, 3, 8, 8) * s + m for s, m in ((1.0, 0.0), (2.0, 1.0), (0.5, -3.0))]
    single = torch.randn(1, 3, 8, 8) * 10 + 50  # skipped: a one-image batch
    used = recompute_bn_stats(model, [batches[0], single, batches[1], batches[2]], normalize=False)
    assert used == 3
    with torch.no_grad():
        feats = [conv(b) for b in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # momentum and mode restored
    assert int(bn.num_batches_tracked) == 3


def test_no_usable_batch_leaves_statistics_unchanged():
    _, model = _toy()
    bn = model[1]
    bn.running_mean.fill_(0.25)
    bn.running_var.fill_(2.0)
    assert recompute_bn_stats(model, [torch.randn(1, 3, 8, 8)], normalize=False) == 0
    assert torch.all(bn.running_mean == 0.25) and torch.all(bn.running_var == 2.0)
    assert recompute_bn_stats(nn.Conv2d(3, 3, 1), [torch.randn(2, 3, 4, 4)], normalize=False) == 0  # no BN


def test_precise_bn_images_subset_and_full_batches(tmp_path):
    root = make_folder_dataset(tmp_path / "d", SYNTH11, n=7, size=(16, 24))
    ds = build_eval_dataset({"type": "folder", "root": str(root), "classes": "synth11"})
    got = list(precise_bn_images(ds, num_images=6, batch_size=4, device="cpu"))  # 6 at <= 4: 3 + 3
    assert [g.shape for g in got] == [(3, 3, 16, 24)] * 2 and got[0].dtype == torch.uint8
    every = list(precise_bn_images(ds, num_images=100, batch_size=3, device="cpu"))  # 7 → 3 + 2 + 2, none dropped
    assert [len(g) for g in every] == [3, 2, 2]
    assert len({g.flatten().numpy().tobytes() for b in every for g in b}) == 7  # each image once
    a = torch.cat(list(precise_bn_images(ds, 6, 2, "cpu", seed=1)))
    b = torch.cat(list(precise_bn_images(ds, 6, 2, "cpu", seed=1)))
    assert torch.equal(a, b)


def _cfg(tmp_path, *extra):
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=8, seed=0)
    tgt = make_folder_dataset(tmp_path / "tgt", SYNTH11, n=8, seed=2, size=(40, 48), dark=0.4)
    return load_train_config(None, [
        "model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
        f"target={{type: folder, root: {tgt}, classes: synth11}}",
        "transform.crop_size=[32,32]", "optim.lr=1e-3", "optim.warmup_iters=1", "optim.max_iters=3",
        "batch_size=2", "device=cpu", "ckpt_interval=3", *extra])


def test_trainer_option_reestimates_statistics_on_whole_target_images(tmp_path):
    on = train(_cfg(tmp_path, "precise_bn.enabled=true", "precise_bn.num_images=6", "precise_bn.batch_size=3",
                    f"out_dir={tmp_path / 'on'}"))
    off = train(_cfg(tmp_path, f"out_dir={tmp_path / 'off'}"))
    seg_on, seg_off = load_segmenter(on.checkpoint), load_segmenter(off.checkpoint)
    p_on, p_off = dict(seg_on.named_parameters()), dict(seg_off.named_parameters())
    assert all(torch.equal(p_on[k], p_off[k]) for k in p_on)  # same weights: only the statistics differ
    bns_on, bns_off = bn_layers(seg_on), bn_layers(seg_off)
    assert bns_on and any(not torch.allclose(a.running_mean, b.running_mean) for a, b in zip(bns_on, bns_off))
    # final.pt holds exactly what recompute_bn_stats gives on the same whole 40×48 target images
    ds = build_eval_dataset({"type": "folder", "root": str(tmp_path / "tgt"), "classes": "synth11"})
    recompute_bn_stats(seg_off, precise_bn_images(ds, 6, 3, "cpu"))
    for a, b in zip(bns_on, bn_layers(seg_off)):
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-5)
        assert torch.allclose(a.running_var, b.running_var, atol=1e-5)


@pytest.mark.parametrize("override, key", [
    ("precise_bn.batch_size=1", "precise_bn.batch_size"),
    ("precise_bn.images=val", "precise_bn.images"),
    ("precise_bn.sizes=2", "precise_bn.sizes"),
])
def test_bad_precise_bn_key_is_a_config_error_naming_it(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(tmp_path, override)


def test_target_images_without_target_dataset_is_a_config_error(tmp_path):
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=4, seed=0)
    with pytest.raises(ConfigError, match="precise_bn.images"):
        load_train_config(None, ["model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
                                 "precise_bn.enabled=true"])


def test_images_of_different_sizes_raise_a_named_error():
    from pipa_edge.train.precise_bn import ImageSizeMismatch

    items = [{"image": torch.zeros(3, 8, 8, dtype=torch.uint8)}, {"image": torch.zeros(3, 8, 10, dtype=torch.uint8)}]
    with pytest.raises(ImageSizeMismatch, match=r"\(3, 8, 10\)"):
        list(precise_bn_images(items, num_images=2, batch_size=2, device="cpu"))
