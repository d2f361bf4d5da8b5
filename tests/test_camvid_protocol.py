"""Held-out protocol building blocks (issue 22): fold splits, class-balanced cross-entropy, precise BN
on every image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipa_edge.data.build import build_dataset, build_eval_dataset
from pipa_edge.data.classes import SYNTH11
from pipa_edge.data.folds import fold_indices, sequence_of
from pipa_edge.errors import ConfigError
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.train.config import load_train_config
from pipa_edge.train.method import SourceOnly, class_weights_from_counts, configure_loss
from pipa_edge.train.precise_bn import precise_bn_batches, precise_bn_images
from pipa_edge.train.toydata import make_folder_dataset

# two sequences, names shuffled: 0001TP has 7 frames, 0006R0 has 4
NAMES = ["0006R0_f03", "0001TP_0005", "0001TP_0001", "0006R0_f01", "0001TP_0007", "0001TP_0003",
         "0006R0_f02", "0001TP_0002", "0001TP_0006", "0006R0_f04", "0001TP_0004"]


@pytest.mark.parametrize("k", [2, 3])
def test_fold_parts_are_disjoint_complete_and_contiguous_per_sequence(k):
    every = set(range(len(NAMES)))
    held_all = []
    for i in range(k):
        held, train = set(fold_indices(NAMES, k, i, "heldout")), set(fold_indices(NAMES, k, i, "train"))
        assert held and train and not held & train  # no frame in both halves
        assert held | train == every  # union = all frames
        held_all += sorted(held)
        for seq in {sequence_of(n) for n in NAMES}:  # each sequence's held-out frames are one contiguous run
            frames = sorted(NAMES[j] for j in range(len(NAMES)) if sequence_of(NAMES[j]) == seq)
            pos = sorted(frames.index(NAMES[j]) for j in held if sequence_of(NAMES[j]) == seq)
            assert pos == list(range(pos[0], pos[0] + len(pos)))
    assert sorted(held_all) == sorted(every)  # the held-out parts of the k folds cover each frame once
    assert fold_indices(NAMES, k, 0, "heldout") == fold_indices(list(NAMES), k, 0, "heldout")  # deterministic


def test_fold_of_two_halves_by_hand():
    held0 = [NAMES[i] for i in fold_indices(NAMES, 2, 0, "heldout")]
    assert sorted(held0) == ["0001TP_0001", "0001TP_0002", "0001TP_0003", "0001TP_0004", "0006R0_f01", "0006R0_f02"]
    with pytest.raises(ValueError):
        fold_indices(NAMES, 2, 2, "heldout")


def test_fold_dataset_option(tmp_path):
    root = make_folder_dataset(tmp_path / "d", SYNTH11, n=5, size=(8, 8))
    spec = {"type": "folder", "root": str(root), "classes": "synth11"}
    parts = [build_dataset({**spec, "fold": {"k": 2, "index": i, "part": p}}) for i in (0, 1) for p in ("train", "heldout")]
    names = [[r.name for r in d.records] for d in parts]
    assert len(names[1]) == 3 and len(names[3]) == 2 and sorted(names[1] + names[3]) == sorted(names[0] + names[1])
    assert names[0] == names[3] and not set(names[0]) & set(names[1])
    with pytest.raises(ConfigError, match="fold"):
        build_dataset({**spec, "fold": {"k": 2, "index": 2}})


def test_camvid_dusk_folds_are_contiguous_halves(camvid_root):
    spec = {"type": "camvid", "root": str(camvid_root), "split": "dusk_train"}
    h0 = [r.name for r in build_dataset({**spec, "fold": {"index": 0, "part": "heldout"}}).records]
    h1 = [r.name for r in build_dataset({**spec, "fold": {"index": 1, "part": "heldout"}}).records]
    t0 = [r.name for r in build_dataset({**spec, "fold": {"index": 0, "part": "train"}}).records]
    assert (len(h0), len(h1)) == (16, 15) and t0 == h1 and sorted(h0 + h1) == h0 + h1


def test_class_weights_from_a_histogram_by_hand():
    counts = [100, 25, 0, 4]  # f = 100/129, 25/129, 0, 4/129
    w = class_weights_from_counts(counts, "sqrt_inv_freq")
    f = np.array(counts) / 129
    assert w[2] == 0  # absent class
    assert w[1] / w[0] == pytest.approx(2.0) and w[3] / w[0] == pytest.approx(5.0)  # sqrt(100/25), sqrt(100/4)
    assert float((f * w).sum()) == pytest.approx(1.0)
    wi = class_weights_from_counts(np.array([[60, 20, 0, 4], [40, 5, 0, 0]]), "inv_freq", max_weight=100)
    assert wi[3] / wi[0] == pytest.approx(25.0)  # per-image counts are summed
    assert class_weights_from_counts(counts, "inv_freq", max_weight=3.0).max() == pytest.approx(3.0)
    assert (class_weights_from_counts(counts, "none") == 1).all()


def test_source_only_uses_the_weights_and_respects_the_ignore_index(tmp_path):
    torch.manual_seed(0)
    seg = build_segmenter("segformer-b0", SYNTH11)
    method = SourceOnly(seg)
    logits = torch.randn(2, 11, 4, 4)
    label = torch.randint(0, 11, (2, 4, 4))
    label[0, 0] = 255
    plain = method.source_ce(logits, label)
    assert plain == pytest.approx(float(F.cross_entropy(logits, label, ignore_index=255)))
    w = torch.rand(11) + 0.5
    method.class_weights = w
    got = method.source_ce(logits, label)
    valid = label != 255
    per = F.cross_entropy(logits, label.clamp(max=10), reduction="none")[valid]
    ref = (per * w[label[valid]]).sum() / w[label[valid]].sum()
    assert float(got) == pytest.approx(float(ref), rel=1e-5)


def test_configure_loss_counts_the_stored_source_labels(tmp_path):
    from pipa_edge.train.build import build_datasets

    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=3, size=(16, 16))
    cfg = load_train_config(None, ["model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
                                   "loss.class_weights=sqrt_inv_freq", "transform.crop_size=[8,8]"])
    source, _, _ = build_datasets(cfg)
    method = SourceOnly(build_segmenter("segformer-b0", SYNTH11))
    w = configure_loss(method, cfg, source, tmp_path / "out")
    counts = np.zeros(11, np.int64)
    for i in range(len(source.dataset)):
        lab = source.dataset[i]["label"].ravel()
        counts += np.bincount(lab[lab < 11], minlength=11)[:11]
    assert np.allclose(w, class_weights_from_counts(counts, "sqrt_inv_freq"))
    assert torch.allclose(method.class_weights, torch.tensor(w, dtype=torch.float32))
    assert (tmp_path / "out" / "rcs_counts.json").is_file()  # cached with the rare-class counts


@pytest.mark.parametrize("n,bs,sizes", [(31, 8, [8, 8, 8, 7]), (24, 8, [8, 8, 8]), (9, 8, [5, 4]), (1, 8, [1])])
def test_precise_bn_batches_cover_every_image(n, bs, sizes):
    assert precise_bn_batches(n, bs) == sizes


def test_one_batching_function_for_precise_bn_and_onnx_bn_adaptation():
    from pipa_edge.batching import near_equal_batches
    from pipa_edge.runtime.bn_adapt import batch_sizes

    assert precise_bn_batches is near_equal_batches and batch_sizes is near_equal_batches


def test_precise_bn_uses_all_31_images(tmp_path):
    root = make_folder_dataset(tmp_path / "d", SYNTH11, n=31, size=(8, 8))
    ds = build_eval_dataset({"type": "folder", "root": str(root), "classes": "synth11"})
    got = list(precise_bn_images(ds, num_images=200, batch_size=8, device="cpu"))
    assert sum(len(b) for b in got) == 31 and min(len(b) for b in got) >= 2


def test_trainer_applies_class_weights_to_the_source_loss(tmp_path):
    from pipa_edge.train.trainer import train

    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=4, size=(40, 48))
    common = ["model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}", "transform.crop_size=[32,32]",
              "transform.brightness=0.2", "transform.gamma=0.2", "optim.max_iters=2", "optim.warmup_iters=0",
              "batch_size=2", "device=cpu", "log_interval=1"]
    losses = {}
    for kind in ("none", "inv_freq"):
        out = tmp_path / kind
        train(load_train_config(None, common + [f"out_dir={out}", f"loss.class_weights={kind}"]))
        rows = [r.split(",") for r in (out / "scalars.csv").read_text().splitlines()[1:]]
        losses[kind] = next(float(r[2]) for r in rows if r[0] == "1" and r[1] == "train/loss_src")
    assert (tmp_path / "inv_freq" / "rcs_counts.json").is_file() and not (tmp_path / "none" / "rcs_counts.json").exists()
    assert losses["none"] != pytest.approx(losses["inv_freq"], rel=1e-4)  # same first batch, weighted loss differs
