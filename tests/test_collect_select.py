"""Selection rules of the pseudo-label collector (pure NumPy, no disk)."""

from __future__ import annotations

import numpy as np
import pytest

from pipa_edge.data.classes import CAMVID11
from pipa_edge.errors import ConfigError
from pipa_edge.runtime.collect.config import CollectConfig, load_collect_config, parse_size
from pipa_edge.runtime.collect.select import Selector, hamming_min, laplacian_var, phash, to_grey

K = CAMVID11.num_classes


def make_cfg(**kw) -> CollectConfig:
    """Everything off except what the test sets."""
    base = dict(min_interval_s=0.0, min_blur_var=0.0, min_confident_fraction=0.0, max_mean_entropy=1.0,
                stability={"frames": 1}, dedup={"enabled": False})
    base.update(kw)
    return CollectConfig.model_validate(base)


def probs_from(labels: np.ndarray, conf: np.ndarray | float) -> np.ndarray:
    """(K, h, w) probabilities with argmax ``labels`` and max probability ``conf``."""
    conf = np.broadcast_to(np.asarray(conf, np.float32), labels.shape)
    p = np.repeat(((1.0 - conf) / (K - 1))[None], K, axis=0).astype(np.float32)
    np.put_along_axis(p, labels[None].astype(np.int64), conf[None], axis=0)
    return p


def textured(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_fixed_and_per_class_thresholds():
    lab = np.zeros((4, 10), np.uint8)
    lab[2:] = 3  # rows 0-1 sky, rows 2-3 road
    conf = np.tile(np.linspace(0.55, 1.0, 10, dtype=np.float32), (4, 1))
    sel = Selector(make_cfg(thresholds={"value": 0.9, "per_class": {"road": 0.6}}), CAMVID11)
    d = sel.decide(textured(0), probs_from(lab, conf), 0.0)
    assert d.accept
    expect_sky = conf[0] >= 0.9
    assert np.array_equal(d.label[0] == 0, expect_sky) and np.all(d.label[0][~expect_sky] == 255)
    assert np.array_equal(d.label[2] == 3, conf[2] >= 0.6)
    assert d.info["thresholds"][CAMVID11.index("road")] == pytest.approx(0.6)
    assert d.info["class_hist"][0] == 2 * int(expect_sky.sum())


def test_percentile_thresholds_follow_each_class_distribution():
    cfg = make_cfg(thresholds={"mode": "percentile", "percentile": 50, "min_value": 0.3, "max_value": 0.95,
                               "min_pixels": 100, "value": 0.8})
    sel = Selector(cfg, CAMVID11)
    rng = np.random.default_rng(1)
    lab = np.zeros((20, 50), np.uint8)
    lab[10:] = 8  # top half sky, bottom half car
    for i in range(5):
        conf = np.empty((20, 50), np.float32)
        conf[:10] = rng.uniform(0.4, 0.8, (10, 50))  # sky: median 0.6
        conf[10:] = 0.99  # car: always confident → clipped at max_value
        sel.decide(textured(i), probs_from(lab, conf), float(i))
    thr = sel.thresholds()
    assert thr[0] == pytest.approx(0.6, abs=0.03)
    assert thr[8] == pytest.approx(0.95)
    assert thr[CAMVID11.index("pedestrian")] == pytest.approx(0.8)  # unseen class: fixed value


def test_stability_window_rejects_flicker_and_masks_changed_pixels():
    cfg = make_cfg(stability={"frames": 3, "max_flip_rate": 0.2, "mask_unstable": True})
    sel = Selector(cfg, CAMVID11)
    a = np.zeros((10, 10), np.uint8)
    b = np.full((10, 10), 3, np.uint8)
    assert sel.decide(textured(0), probs_from(a, 0.99), 0.0).reason == "unstable"  # window not full yet
    assert sel.decide(textured(1), probs_from(b, 0.99), 1.0).reason == "unstable"  # flips everywhere
    assert sel.decide(textured(2), probs_from(a, 0.99), 2.0).reason == "unstable"
    sel2 = Selector(cfg, CAMVID11)
    c = a.copy()
    c[0, :5] = 3  # 5 % of the pixels differ in the last frame
    for i, lab in enumerate((a, a, c)):
        d = sel2.decide(textured(i), probs_from(lab, 0.99), float(i))
    assert d.accept and d.info["flip_rate"] == pytest.approx(0.025)
    assert np.all(d.label[0, :5] == 255) and np.all(d.label[1:] == 0)


def test_confident_fraction_entropy_and_blur_rules():
    lab = np.zeros((16, 16), np.uint8)
    low = Selector(make_cfg(min_confident_fraction=0.5, thresholds={"value": 0.9}), CAMVID11)
    assert low.decide(textured(0), probs_from(lab, 0.6), 0.0).reason == "confidence"
    ent = Selector(make_cfg(max_mean_entropy=0.3, thresholds={"value": 0.05}), CAMVID11)
    uniform = np.full((K, 16, 16), 1.0 / K, np.float32)
    uniform[0] += 1e-3
    d = ent.decide(textured(0), uniform, 0.0)
    assert d.reason == "entropy" and d.info["mean_entropy"] > 0.99
    blur = Selector(make_cfg(min_blur_var=50.0, thresholds={"value": 0.5}), CAMVID11)
    flat = np.full((48, 64, 3), 120, np.uint8)
    assert blur.decide(flat, probs_from(lab, 0.99), 0.0).reason == "blur"
    assert blur.decide(textured(3), probs_from(lab, 0.99), 1.0).accept
    assert laplacian_var(to_grey(flat)) == 0.0 and laplacian_var(to_grey(textured(3))) > 1000


def test_min_interval_between_saves():
    sel = Selector(make_cfg(min_interval_s=1.0, thresholds={"value": 0.5}), CAMVID11)
    lab = np.zeros((8, 8), np.uint8)
    got = [sel.decide(textured(i), probs_from(lab, 0.99), t).reason for i, t in enumerate((0.0, 0.4, 0.9, 1.0, 1.5, 2.2))]
    assert got == ["ok", "interval", "interval", "ok", "interval", "ok"]


def test_near_duplicate_rejection_by_perceptual_hash():
    rng = np.random.default_rng(5)
    base = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # blocky scene
    noisy = np.clip(base.astype(int) + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
    other = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    h0, h1, h2 = phash(to_grey(base)), phash(to_grey(noisy)), phash(to_grey(other))
    assert hamming_min(h1, np.array([h0], np.uint64)) <= 4  # same scene, sensor noise
    assert hamming_min(h2, np.array([h0], np.uint64)) > 12  # another scene
    sel = Selector(make_cfg(dedup={"enabled": True, "max_hamming": 6}, thresholds={"value": 0.5}), CAMVID11)
    lab = np.zeros((8, 8), np.uint8)
    stored = np.array([h0], np.uint64)
    assert sel.decide(noisy, probs_from(lab, 0.99), 0.0, stored_hashes=stored).reason == "duplicate"
    assert sel.decide(other, probs_from(lab, 0.99), 1.0, stored_hashes=stored).accept


def test_per_class_quotas_favour_rare_classes():
    cfg = make_cfg(quota_per_class=2, quota_overrides={"pedestrian": 50}, class_presence=0.05,
                   thresholds={"value": 0.5})
    sel = Selector(cfg, CAMVID11)
    counts = np.zeros(K, np.int64)
    counts[CAMVID11.index("road")] = 2  # road already at quota
    only_road = np.full((10, 10), 3, np.uint8)
    with_ped = only_road.copy()
    with_ped[:2] = CAMVID11.index("pedestrian")  # 20 % pedestrian
    assert sel.decide(textured(0), probs_from(only_road, 0.99), 0.0, class_counts=counts).reason == "quota"
    assert sel.decide(textured(1), probs_from(with_ped, 0.99), 1.0, class_counts=counts).accept
    tiny = only_road.copy()
    tiny[0, 0] = CAMVID11.index("pedestrian")  # 1 % < presence: does not count as containing it
    assert sel.decide(textured(2), probs_from(tiny, 0.99), 2.0, class_counts=counts).reason == "quota"


def test_config_from_yaml_and_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("thresholds:\n  mode: percentile\n  percentile: 40\nstorage:\n  max_bytes: 2M\n  eviction: oldest\n")
    cfg = load_collect_config(f, ["min_interval_s=0.5"])
    assert cfg.thresholds.percentile == 40 and cfg.storage.max_bytes == 2 * 1024 ** 2 and cfg.min_interval_s == 0.5
    assert parse_size("64kb") == 65536 and parse_size(None) is None
    f.write_text("storage:\n  eviction: random\n")
    with pytest.raises(ConfigError, match="storage.eviction"):
        load_collect_config(f)
    f.write_text("thresholdz: {}\n")
    with pytest.raises(ConfigError, match="thresholdz.*unknown key"):
        load_collect_config(f)
    with pytest.raises(ConfigError, match="thresholds.per_class.unicorn.*no class 'unicorn'"):
        Selector(make_cfg(thresholds={"per_class": {"unicorn": 0.5}}), CAMVID11)


def test_clock_restart_and_output_size_change_do_not_wedge_selection():
    sel = Selector(make_cfg(min_interval_s=5.0, stability={"frames": 2, "max_flip_rate": 0.5},
                            thresholds={"value": 0.5}), CAMVID11)
    small, big = np.zeros((8, 8), np.uint8), np.zeros((16, 16), np.uint8)
    assert sel.decide(textured(0), probs_from(small, 0.99), 100.0).reason == "unstable"
    assert sel.decide(textured(1), probs_from(small, 0.99), 101.0).accept
    assert sel.decide(textured(2), probs_from(big, 0.99), 102.0).reason == "interval"  # no shape error
    assert sel.decide(textured(3), probs_from(big, 0.99), 0.5).accept  # clock went back: interval reset
