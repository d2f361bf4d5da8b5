"""Training/eval transforms: alignment of image and label, padding, flips, jitter, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipa_edge.config import validate
from pipa_edge.data.build import AugmentedDataset, worker_init_fn
from pipa_edge.data.classes import get_class_set
from pipa_edge.data.transforms import EvalTransform, TrainTransform, TransformConfig, adjust_colour, random_crop
from pipa_edge.errors import ConfigError


def _coded_sample(h=60, w=80):
    """Image whose pixel colour encodes its (y, x) position; label = a function of the same position.

    Any geometric transform that keeps image and label aligned keeps ``label == f(image)`` for
    every pixel that was not interpolated across a region boundary.
    """
    yy, xx = np.mgrid[0:h, 0:w]
    # label constant on 10x10 blocks, image colour = block id (flat inside a block, so bilinear resize
    # keeps block interiors exact)
    block = (yy // 10) * 8 + (xx // 10)
    label = block.astype(np.uint8)
    image = np.stack([block * 3 % 256, block * 7 % 256, block * 11 % 256], -1).astype(np.uint8)
    return {"image": image, "label": label, "name": "coded"}, block


def _colour_to_label():
    lut = {}
    for b in range(6 * 8):
        lut[(b * 3 % 256, b * 7 % 256, b * 11 % 256)] = b
    return lut


@pytest.mark.parametrize("seed", range(10))
def test_train_transform_keeps_image_and_label_aligned(seed):
    sample, _ = _coded_sample()
    cfg = TransformConfig(crop_size=(48, 40), scale_range=(0.7, 1.6), hflip=0.5)
    out = TrainTransform(cfg)(sample, np.random.default_rng(seed))
    img, lab = out["image"], out["label"]
    assert img.dtype == torch.uint8 and img.shape == (3, 48, 40)
    assert lab.dtype == torch.int64 and lab.shape == (48, 40)
    assert out["name"] == "coded"
    lut = _colour_to_label()
    im = img.permute(1, 2, 0).numpy()
    lab_np = lab.numpy()
    checked = 0
    for y in range(1, 47):
        for x in range(1, 39):
            win = lab_np[y - 1:y + 2, x - 1:x + 2]
            if lab_np[y, x] == 255 or (win != lab_np[y, x]).any():
                continue  # only block interiors: at boundaries bilinear vs nearest differ by < 1 px
            assert lut.get(tuple(int(v) for v in im[y, x])) == int(lab_np[y, x]), (y, x)
            checked += 1
    assert checked > 46 * 38 // 4


def test_flip_mirrors_both():
    sample, _ = _coded_sample()
    cfg = TransformConfig(crop_size=(60, 80), scale_range=(1.0, 1.0), hflip=1.0)
    out = TrainTransform(cfg)(sample, np.random.default_rng(0))
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), sample["image"][:, ::-1])
    assert np.array_equal(out["label"].numpy(), sample["label"][:, ::-1].astype(np.int64))
    cfg0 = cfg.model_copy(update={"hflip": 0.0})
    out0 = TrainTransform(cfg0)(sample, np.random.default_rng(0))
    assert np.array_equal(out0["image"].permute(1, 2, 0).numpy(), sample["image"])


def test_crop_pads_image_with_zero_and_label_with_ignore():
    sample, _ = _coded_sample(20, 30)
    sample["image"] = np.full((20, 30, 3), 200, np.uint8)
    sample["label"] = np.full((20, 30), 3, np.uint8)
    cfg = TransformConfig(crop_size=(40, 50), scale_range=(1.0, 1.0), hflip=0.0)
    out = TrainTransform(cfg)(sample, np.random.default_rng(1))
    img, lab = out["image"].numpy(), out["label"].numpy()
    assert img.shape == (3, 40, 50) and lab.shape == (40, 50)
    assert (img[:, :20, :30] == 200).all() and (img[:, 20:, :] == 0).all() and (img[:, :, 30:] == 0).all()
    assert (lab[:20, :30] == 3).all() and (lab[20:, :] == 255).all() and (lab[:, 30:] == 255).all()


def test_scale_range_and_base_size():
    img = np.zeros((100, 200, 3), np.uint8)
    lab = np.zeros((100, 200), np.uint8)
    # crop larger than anything produced: output = scaled image padded; measure the unpadded extent
    cfg = TransformConfig(crop_size=(400, 400), scale_range=(0.5, 0.5), base_size=(50, 60), hflip=0.0)
    out = TrainTransform(cfg)({"image": img, "label": lab, "name": "x"}, np.random.default_rng(0))
    valid = out["label"].numpy() != 255
    assert valid.sum(0).max() == 25 and valid.sum(1).max() == 30
    cfg2 = TransformConfig(crop_size=(400, 400), scale_range=(1.5, 1.5), hflip=0.0)
    out2 = TrainTransform(cfg2)({"image": img, "label": lab, "name": "x"}, np.random.default_rng(0))
    valid2 = out2["label"].numpy() != 255
    assert valid2.sum(0).max() == 150 and valid2.sum(1).max() == 300


def test_labels_resized_nearest_only():
    rng = np.random.default_rng(0)
    lab = rng.choice(np.array([0, 5, 12, 255], np.uint8), size=(37, 53))
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for seed in range(5):
        out = TrainTransform(TransformConfig(crop_size=(30, 30), scale_range=(0.6, 1.9)))(
            {"image": img, "label": lab, "name": "n"}, np.random.default_rng(seed))
        assert set(np.unique(out["label"].numpy())) <= {0, 5, 12, 255}


def test_deterministic_given_seed_and_varies_otherwise():
    sample, _ = _coded_sample()
    cfg = TransformConfig(crop_size=(32, 32), brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    t = TrainTransform(cfg)
    a = t(sample, np.random.default_rng(7))
    b = t(sample, np.random.default_rng(7))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    outs = [t(sample, np.random.default_rng(s))["image"] for s in range(8)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_jitter_changes_only_colours():
    rng = np.random.default_rng(0)
    img = rng.integers(30, 220, (32, 32, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (32, 32), dtype=np.uint8)
    base = TransformConfig(crop_size=(32, 32), scale_range=(1.0, 1.0), hflip=0.0)
    plain = TrainTransform(base)({"image": img, "label": lab, "name": "j"}, np.random.default_rng(3))
    assert np.array_equal(plain["image"].permute(1, 2, 0).numpy(), img)  # no jitter by default
    for field in ("brightness", "contrast", "saturation", "hue"):
        cfg = base.model_copy(update={field: 0.4 if field != "hue" else 0.2})
        out = TrainTransform(cfg)({"image": img, "label": lab, "name": "j"}, np.random.default_rng(3))
        assert not np.array_equal(out["image"].permute(1, 2, 0).numpy(), img), field
        assert np.array_equal(out["label"].numpy(), lab.astype(np.int64))
    # brightness factor > 1 makes the mean brighter, < 1 darker: check it follows the drawn factor
    cfg = base.model_copy(update={"brightness": 0.5})
    means = [TrainTransform(cfg)({"image": img, "name": "j"}, np.random.default_rng(s))["image"].float().mean()
             for s in range(6)]
    assert max(means) > img.mean() + 5 and min(means) < img.mean() - 5


@pytest.mark.parametrize("op,f", [("b", 0.7), ("b", 1.3), ("c", 0.6), ("c", 1.4), ("s", 0.5), ("s", 1.5),
                                  ("h", 0.1), ("h", -0.2)])
def test_colour_ops_match_torchvision(op, f):
    tvf = pytest.importorskip("torchvision.transforms.functional")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    img[:8] = np.array([200, 40, 40], np.uint8)  # a saturated patch so hue/saturation matter
    x = torch.from_numpy(img).permute(2, 0, 1)
    ref = {"b": tvf.adjust_brightness, "c": tvf.adjust_contrast, "s": tvf.adjust_saturation,
           "h": tvf.adjust_hue}[op](x, f).permute(1, 2, 0).numpy().astype(int)
    out = adjust_colour(img, op, f).astype(int)
    diff = np.abs(out - ref)
    if op != "h":
        assert diff.max() <= 1  # rounding differs by at most one grey level
    else:  # 8-bit HSV quantisation (speed): a few levels at worst, under one on average
        assert diff.max() <= 12 and diff.mean() < 1.5
    assert not np.array_equal(out, img)


def test_cat_max_ratio_avoids_single_class_crops():
    lab = np.zeros((100, 100), np.uint8)
    lab[:, 90:] = 1  # only crops reaching x >= 90 contain a second class
    img = np.zeros((100, 100, 3), np.uint8)
    hits_plain = hits_cat = 0
    for s in range(40):
        _, l0 = random_crop(img, lab, (20, 20), np.random.default_rng(s), cat_max_ratio=1.0)
        _, l1 = random_crop(img, lab, (20, 20), np.random.default_rng(s), cat_max_ratio=0.95)
        hits_plain += len(np.unique(l0)) > 1
        hits_cat += len(np.unique(l1)) > 1
    assert hits_cat > hits_plain


def test_image_only_sample_and_eval_transform():
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    lab = np.arange(40 * 60, dtype=np.int64).reshape(40, 60) % 7
    out = TrainTransform(TransformConfig(crop_size=(16, 16)))({"image": img, "name": "a"}, np.random.default_rng(0))
    assert set(out) == {"image", "name"} and out["image"].shape == (3, 16, 16)
    ev = EvalTransform()({"image": img, "label": lab.astype(np.uint8), "name": "e"})
    assert np.array_equal(ev["image"].permute(1, 2, 0).numpy(), img)
    assert torch.equal(ev["label"], torch.from_numpy(lab))
    ev2 = EvalTransform((20, 30))({"image": img, "label": lab.astype(np.uint8), "name": "e"})
    assert ev2["image"].shape == (3, 20, 30) and ev2["label"].shape == (20, 30)
    assert set(ev2["label"].unique().tolist()) <= set(range(7))
    ev3 = EvalTransform((20, 30), resize_label=False)({"image": img, "label": lab.astype(np.uint8), "name": "e"})
    assert ev3["image"].shape == (3, 20, 30) and ev3["label"].shape == (40, 60)


def test_transform_config_validation():
    with pytest.raises(ConfigError, match="scale_range"):
        validate(TransformConfig, {"scale_range": [2.0, 1.0]}, where="recipe.yaml")
    with pytest.raises(ConfigError, match="hflip"):
        validate(TransformConfig, {"hflip": 1.5}, where="recipe.yaml")
    with pytest.raises(ConfigError, match="unknown key"):
        validate(TransformConfig, {"flip": 0.5}, where="recipe.yaml")
    cfg = validate(TransformConfig, {"crop_size": [256, 512], "cat_max_ratio": 0.75}, where="recipe.yaml")
    assert cfg.crop_size == (256, 512)


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, n=6):
        rng = np.random.default_rng(0)
        self.items = [{"image": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
                       "label": rng.integers(0, 11, (24, 32), dtype=np.uint8), "name": f"s{i}"} for i in range(n)]
        self.classes = get_class_set("camvid11")
        self.root = "."

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_augmented_dataset_seeded_by_seed_epoch_index():
    cfg = TransformConfig(crop_size=(16, 16), brightness=0.3)
    ds = AugmentedDataset(_ListDataset(), TrainTransform(cfg), seed=3)
    a0 = [ds[i]["image"] for i in range(len(ds))]
    b0 = [ds[i]["image"] for i in reversed(range(len(ds)))][::-1]  # order does not matter
    assert all(torch.equal(x, y) for x, y in zip(a0, b0))
    ds.set_epoch(1)
    a1 = [ds[i]["image"] for i in range(len(ds))]
    assert any(not torch.equal(x, y) for x, y in zip(a0, a1))
    ds.set_epoch(0)
    assert torch.equal(ds[2]["image"], a0[2])
    other = AugmentedDataset(_ListDataset(), TrainTransform(cfg), seed=4)
    assert any(not torch.equal(other[i]["image"], a0[i]) for i in range(len(ds)))
    assert ds.classes.name == "camvid11" and len(ds) == 6


def test_augmented_dataset_same_batches_with_workers():
    cfg = TransformConfig(crop_size=(16, 16), hue=0.1)
    ds = AugmentedDataset(_ListDataset(), TrainTransform(cfg), seed=0)
    ds.set_epoch(2)
    batches0 = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0))
    batches2 = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, worker_init_fn=worker_init_fn))
    for b0, b2 in zip(batches0, batches2):
        assert torch.equal(b0["image"], b2["image"]) and torch.equal(b0["label"], b2["label"])
        assert b0["name"] == b2["name"]


class _Items(list):
    classes, root = None, "."


PHOTO = dict(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, gamma=0.3, gamma_prob=1.0, blur_prob=1.0,
             noise_std=8.0, noise_prob=1.0)


def test_photometric_options_are_deterministic_per_seed_and_leave_labels_untouched():
    sample, _ = _coded_sample()
    geo = dict(crop_size=(48, 40), scale_range=(0.7, 1.6), hflip=0.5)
    plain, photo = TrainTransform(TransformConfig(**geo)), TrainTransform(TransformConfig(**geo, **PHOTO))
    ds = AugmentedDataset(_Items([sample] * 4), photo, seed=5)
    again = AugmentedDataset(_Items([sample] * 4), photo, seed=5)
    other = AugmentedDataset(_Items([sample] * 4), photo, seed=6)
    for i in range(4):
        a, b, c = ds[i], again[i], other[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])  # same seed, same batch
        assert not torch.equal(a["image"], c["image"])  # another seed, another draw
        ref = plain(sample, ds.rng(i))  # same geometry draws: the photometric steps come after them
        assert torch.equal(a["label"], ref["label"])  # labels untouched
        assert not torch.equal(a["image"], ref["image"])  # the image did change


@pytest.mark.parametrize("key,value", [("gamma", 0.5), ("blur_prob", 1.0), ("noise_std", 10.0)])
def test_each_photometric_step_changes_only_the_image(key, value):
    sample, _ = _coded_sample()
    geo = dict(crop_size=(60, 80), scale_range=(1.0, 1.0), hflip=0.0)
    extra = {"gamma_prob": 1.0, "noise_prob": 1.0, "blur_sigma": (1.0, 1.5)}
    out = TrainTransform(TransformConfig(**geo, **extra, **{key: value}))(sample, np.random.default_rng(0))
    ref = TrainTransform(TransformConfig(**geo))(sample, np.random.default_rng(0))
    assert torch.equal(out["label"], ref["label"])
    diff = (out["image"].int() - ref["image"].int()).abs()
    assert diff.max() > 0
    if key == "blur_prob":  # a blur keeps flat block interiors: changes sit at block edges only
        assert diff[:, 2:8, 2:8].max() == 0


def test_photometric_off_keeps_the_old_random_stream():
    """Disabled steps draw nothing: a config without them crops exactly as before they existed."""
    sample, _ = _coded_sample()
    cfg = TransformConfig(crop_size=(32, 32), scale_range=(0.8, 1.4), brightness=0.3)
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    TrainTransform(cfg)(sample, r1)
    TrainTransform(cfg.model_copy(update={"gamma_prob": 1.0, "noise_prob": 1.0}))(sample, r2)
    assert r1.random() == r2.random()


def test_bad_photometric_key_names_it():
    with pytest.raises(ConfigError, match="blur_sigma"):
        validate(TransformConfig, {"blur_sigma": [2.0, 1.0]}, where="t.yaml")
    with pytest.raises(ConfigError, match="gamma"):
        validate(TransformConfig, {"gamma": 1.5}, where="t.yaml")
