"""A short source-only run on a tiny folder dataset: loss falls, outputs and checkpoints are usable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipa_edge.data.build import AugmentedDataset, build_dataset
from pipa_edge.data.classes import SYNTH11
from pipa_edge.data.transforms import TrainTransform, TransformConfig
from pipa_edge.errors import ConfigError
from pipa_edge.models.io import load_segmenter, read_checkpoint
from pipa_edge.train.config import load_train_config
from pipa_edge.train.data import BatchStream
from pipa_edge.train.scalars import read_scalars
from pipa_edge.train.toydata import make_folder_dataset
from pipa_edge.train.trainer import train


def tiny_cfg(tmp_path, *extra):
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=8, seed=0)
    val = make_folder_dataset(tmp_path / "val", SYNTH11, n=3, seed=1)
    return load_train_config(None, [
        "model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
        f"val={{type: folder, root: {val}, classes: synth11}}",
        "transform.crop_size=[32,32]", "transform.scale_range=[0.9,1.1]", "optim.lr=1e-3", "optim.warmup_iters=3",
        "batch_size=2", "device=cpu", "log_interval=5", f"out_dir={tmp_path / 'run'}", *extra])


def test_short_run_loss_decreases_and_writes_usable_outputs(tmp_path):
    cfg = tiny_cfg(tmp_path, "optim.max_iters=30", "eval_interval=15", "ckpt_interval=10", "optim.grad_clip=5")
    res = train(cfg)
    loss = [v for _, v in read_scalars(res.out_dir / "scalars.csv")["train/loss"]]
    assert len(loss) == 6
    assert np.mean(loss[-2:]) < 0.7 * np.mean(loss[:2]), loss
    # final.pt and last.pt both rebuild the plain segmenter; last.pt holds the full training state
    seg = load_segmenter(res.checkpoint)
    for k, v in seg.state_dict().items():
        assert torch.equal(v, res.segmenter.state_dict()[k].cpu())
    ck = read_checkpoint(res.last)
    assert ck["iteration"] == 30 and ck["kind"] == "train"
    assert {"optimizer", "scheduler", "scaler", "rng", "method", "data"} <= set(ck)
    assert ck["data"]["source"] == [7, 2]  # 8 images / batch 2 = 4 iterations per epoch → 30 = 7·4 + 2
    val = next(iter(res.metrics.values()))
    assert val["iteration"] == 30 and 0.0 <= val["miou"] <= 1.0
    assert (res.out_dir / "config.yaml").is_file()


def test_init_from_starts_from_previous_weights(tmp_path):
    first = train(tiny_cfg(tmp_path, "optim.max_iters=2", "ckpt_interval=2"))
    cfg = tiny_cfg(tmp_path, "optim.max_iters=1", f"init_from={first.checkpoint}", f"out_dir={tmp_path / 'r2'}",
                   "optim.lr=1e-12", "optim.weight_decay=0")
    second = train(cfg)
    a = dict(load_segmenter(first.checkpoint).named_parameters())
    b = dict(load_segmenter(second.checkpoint).named_parameters())
    assert a.keys() == b.keys()  # (BN running stats move in train mode: parameters only)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fresh = dict(train(tiny_cfg(tmp_path, "optim.max_iters=1", f"out_dir={tmp_path / 'r3'}", "seed=5",
                                "optim.lr=1e-12", "optim.weight_decay=0")).segmenter.named_parameters())
    assert not all(torch.allclose(a[k], fresh[k].cpu(), atol=1e-6) for k in a)


def test_batch_stream_is_resumable_and_worker_independent(tmp_path):
    root = make_folder_dataset(tmp_path / "d", SYNTH11, n=5, size=(24, 24))
    ds = AugmentedDataset(build_dataset({"type": "folder", "root": str(root), "classes": "synth11"}),
                          TrainTransform(TransformConfig(crop_size=(16, 16), scale_range=(0.8, 1.2))), seed=3)
    s0 = BatchStream(ds, batch_size=2, seed=3)
    assert s0.iters_per_epoch == 2  # 5 samples, batch 2, drop_last
    it0 = s0.batches(0)
    full = [next(it0) for _ in range(7)]
    resumed = BatchStream(ds, batch_size=2, seed=3, num_workers=2).batches(3)
    for k in range(3, 7):
        b = next(resumed)
        assert torch.equal(b["image"], full[k]["image"]) and torch.equal(b["label"], full[k]["label"])
    # two epochs see different orders/augmentations; two ranks see disjoint samples of an epoch
    assert not torch.equal(full[0]["image"], full[2]["image"])
    r0 = BatchStream(ds, 1, seed=3, rank=0, world=2).batches(0)
    r1 = BatchStream(ds, 1, seed=3, rank=1, world=2).batches(0)
    n0 = {next(r0)["name"][0] for _ in range(2)}
    n1 = {next(r1)["name"][0] for _ in range(2)}
    assert not n0 & n1


def test_source_class_set_must_match_the_model(tmp_path):
    cfg = tiny_cfg(tmp_path, "optim.max_iters=1", "model.classes=cityscapes19")
    with pytest.raises(ConfigError, match="source.classes"):
        train(cfg)


def test_batch_stream_follows_an_order_function():
    class Idx:
        classes = SYNTH11

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {"i": torch.tensor(i)}

    order = lambda epoch: np.array([5, 5, 1, 0, 5, 2]) if epoch == 0 else np.array([3, 3, 3, 3, 3, 3])  # noqa: E731
    st = BatchStream(Idx(), 2, seed=0, order_fn=order)
    got = [b["i"].tolist() for _, b in zip(range(4), st.batches())]
    assert got == [[5, 5], [1, 0], [5, 2], [3, 3]]
    assert [b["i"].tolist() for _, b in zip(range(2), st.batches(2))] == [[5, 2], [3, 3]]  # resumable


def test_rare_class_source_sampling_in_the_trainer(tmp_path):
    from pipa_edge.adapt.rcs import RareClassSampler

    cfg = tiny_cfg(tmp_path, "optim.max_iters=4", "source_sampling.kind=rare_class", "source_sampling.min_pixels=20",
                   "source_sampling.temperature=0.1", "val=null")
    res = train(cfg)
    counts = res.out_dir / "rcs_counts.json"
    assert counts.is_file() and (res.out_dir / "final.pt").is_file()
    base = build_dataset(cfg.source)
    rcs = RareClassSampler(base, SYNTH11.num_classes, 0.1, 20, num_samples=len(base), seed=cfg.seed, cache=counts)
    assert rcs.probs.max() > rcs.probs[rcs.probs > 0].min()  # frequencies differ → non-uniform class draw
    assert list(rcs.epoch_indices(0)) == list(rcs.epoch_indices(0)) and len(rcs.epoch_indices(1)) == len(base)
    with pytest.raises(ConfigError, match="source_sampling.kind"):
        tiny_cfg(tmp_path, "source_sampling.kind=rcs")


@pytest.mark.parametrize("method", ["source_only", "mean_teacher"])
def test_logged_loss_is_the_summed_objective(tmp_path, method):
    """train/loss is the step's loss averaged over the log window, counted once (it was logged
    twice for adapters, whose logs also carry "loss"): source-only = loss_src, mean teacher (weights
    1) = loss_src + loss_mix."""
    tgt = make_folder_dataset(tmp_path / "tgt", SYNTH11, n=4, seed=2, dark=0.5)
    extra = [f"method={method}", "optim.max_iters=4", "log_interval=2"]
    if method != "source_only":
        extra.append(f"target={{type: folder, root: {tgt}, classes: synth11}}")
    res = train(tiny_cfg(tmp_path, *extra))
    sc = read_scalars(res.out_dir / "scalars.csv")
    loss = np.array([v for _, v in sc["train/loss"]])
    parts = np.array([v for _, v in sc["train/loss_src"]])
    if method != "source_only":
        parts = parts + np.array([v for _, v in sc["train/loss_mix"]])
    assert len(loss) == 2 and np.all(loss > 0)
    np.testing.assert_allclose(loss, parts, rtol=1e-5)
