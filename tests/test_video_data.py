"""Sequence loaders in each released layout (fixture trees), frame pairs and the pair transform."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipa_edge.data.flow import write_int16_x10
from pipa_edge.data.build import build_dataset
from pipa_edge.data.config import DatasetConfig
from pipa_edge.data.datasets.pairs import PairDataset, PairTrainTransform
from pipa_edge.data.transforms import TransformConfig
from pipa_edge.errors import DataError

H, W = 12, 16


def _rgb(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((H, W, 3), value, np.uint8)
    img[0, 0] = (value, 0, 255 - value)
    assert cv2.imwrite(str(path), img)


def _grey(path: Path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.asarray(arr))


def test_cityscapes_seq_layout(tmp_path):
    for seq in ("000000", "000001"):
        for f in range(17, 20):
            _rgb(tmp_path / "leftImg8bit_sequence/train/aachen" / f"aachen_{seq}_{f:06d}_leftImg8bit.png", f)
    # annotated frame _000019: one sequence with labelTrainIds, the other with labelIds (7 = road, 26 = car)
    _grey(tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", np.full((H, W), 13, np.uint8))
    _grey(tmp_path / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png", np.full((H, W), 7, np.uint8))
    ds = build_dataset(DatasetConfig(type="cityscapes_seq", root=str(tmp_path), classes="viper15"))
    assert len(ds) == 6 and list(ds.sequences()) == ["aachen_000000", "aachen_000001"]
    assert "label" not in ds[0] and ds[0]["name"] == "aachen_000000_000017"
    v15 = ds.classes
    assert ds[2]["label"][0, 0] == v15.index("car") and ds[5]["label"][0, 0] == v15.index("road")
    pairs = build_dataset(DatasetConfig(type="cityscapes_seq", root=str(tmp_path), pair_offset=2))
    assert len(pairs) == 2  # (19, 17) in each snippet
    item = pairs[0]
    assert item["name"] == "aachen_000000_000019" and item["image"][5, 5, 0] == 19 and item["image_prev"][5, 5, 0] == 17
    assert item["label"][0, 0] == 13  # cityscapes19 car


def test_viper_layout(tmp_path):
    for seq in ("001", "002"):
        for f in range(3):
            _rgb(tmp_path / "train/img" / seq / f"{seq}_{f:05d}.jpg", 10 * f)
            _grey(tmp_path / "train/cls" / seq / f"{seq}_{f:05d}.png", np.full((H, W), [24, 8, 5][f], np.uint8))
    ds = build_dataset(DatasetConfig(type="viper", root=str(tmp_path)))
    assert ds.classes.name == "viper15" and len(ds) == 6
    labs = [int(ds[i]["label"][0, 0]) for i in range(3)]
    assert labs == [ds.classes.index("car"), ds.classes.index("vegetation"), 255]  # 5 railtrack → ignore
    assert len(PairDataset(ds, 1)) == 4
    (tmp_path / "train/cls/002/002_00001.png").unlink()
    with pytest.raises(DataError, match="002_00001.png"):
        build_dataset(DatasetConfig(type="viper", root=str(tmp_path)))


def test_synthia_seq_layout_16bit_first_channel(tmp_path):
    seq = tmp_path / "SEQS-04-DAWN"
    for f in range(3):
        _rgb(seq / "RGB/Stereo_Left/Omni_F" / f"{f:06d}.png", 50 + f)
        lab = np.zeros((H, W, 3), np.uint16)
        lab[..., 2] = [3, 8, 12][f]  # BGR index 2 = the PNG's first channel = class id
        lab[..., 1] = 999  # instance ids must be ignored
        _grey(seq / "GT/LABELS/Stereo_Left/Omni_F" / f"{f:06d}.png", lab)
    for root in (tmp_path, seq):  # a folder of sequences, or one sequence
        ds = build_dataset(DatasetConfig(type="synthia_seq", root=str(root)))
        assert ds.classes.name == "synthia_seq12" and len(ds) == 3
        assert [int(ds[i]["label"][0, 0]) for i in range(3)] == [0, 11, 255]  # road, bicycle, (12) ignore
    ds11 = build_dataset(DatasetConfig(type="synthia_seq", root=str(seq), classes="synthia_seq11"))
    assert int(ds11[1]["label"][0, 0]) == 255  # bicycle is not among the 11


def test_camvid_seq_frames_and_video(tmp_path):
    for name in ("0001TP_006690", "0001TP_006720", "0006R0_f00930", "0006R0_f00960", "0006R0_f00990"):
        _rgb(tmp_path / "cv/train/images" / f"{name}.png", 1)
        _grey(tmp_path / "cv/train/labels" / f"{name}.png", np.full((H, W), 3, np.uint8))
    ds = build_dataset(DatasetConfig(type="camvid_seq", root=str(tmp_path / "cv")))
    assert {k: len(v) for k, v in ds.sequences().items()} == {"0001TP": 2, "0006R0": 3}
    assert len(PairDataset(ds, 1)) == 3 and int(ds[0]["label"][0, 0]) == 3
    for i in range(4):
        _rgb(tmp_path / "frames/clipA" / f"{i:04d}.png", i)
    fr = build_dataset(DatasetConfig(type="frames", root=str(tmp_path / "frames")))
    assert list(fr.sequences()) == ["clipA"] and len(PairDataset(fr, 3)) == 1
    vw = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W * 2, H * 2))
    for i in range(5):
        vw.write(np.full((H * 2, W * 2, 3), 40 * i, np.uint8))
    vw.release()
    vd = build_dataset(DatasetConfig(type="video", root=str(tmp_path / "clip.avi"), resize=(H, W)))
    assert len(vd) == 5 and vd[4]["image"].shape == (H, W, 3) and vd[2]["name"] == "clip/000002"
    vals = [int(vd[i]["image"][5, 5, 0]) for i in (3, 1, 2)]  # seek back, then sequential
    assert all(abs(v - e) <= 4 for v, e in zip(vals, (120, 40, 80)))
    pv = PairDataset(vd, 1)
    assert len(pv) == 4 and abs(int(pv[0]["image"][5, 5, 0]) - 40) <= 4 and abs(int(pv[0]["image_prev"][5, 5, 0])) <= 4


def test_pairs_precomputed_flow_and_identical_augmentation(tmp_path):
    rng = np.random.default_rng(0)
    tex = (rng.random((H, W + 4, 3)) * 255).astype(np.uint8)
    (tmp_path / "frames").mkdir()
    for i in range(2):  # frame 1 is frame 0 moved 2 px left: flow 1 → 0 is +2 in x
        bgr = cv2.cvtColor(np.ascontiguousarray(tex[:, 2 * i:2 * i + W]), cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(tmp_path / "frames" / f"{i}.png"), bgr)
    fl = np.zeros((H, W, 2), np.float32)
    fl[..., 0] = 2.0
    write_int16_x10(tmp_path / "flow" / "1_int16_x10.npy", fl)
    ds = build_dataset(DatasetConfig(type="frames", root=str(tmp_path / "frames"), pair_offset=1, flow="precomputed",
                                     flow_root=str(tmp_path / "flow")))
    item = ds[0]
    assert item["flow"].shape == (H, W, 2) and np.allclose(item["flow"][..., 0], 2.0)
    assert not item["flow_valid"][:, -2:].any() and item["flow_valid"][:, :-2].all()
    cfg = TransformConfig(crop_size=(8, 8), scale_range=(2.0, 2.0), hflip=1.0, brightness=0.3, contrast=0.3)
    out = PairTrainTransform(cfg)(item, np.random.default_rng(3))
    assert out["image"].shape == out["image_prev"].shape == (3, 8, 8) and out["image"].dtype == torch.uint8
    assert out["flow"].shape == (2, 8, 8) and torch.allclose(out["flow"][0], torch.tensor(-4.0))  # ×2 scale, flipped
    # same geometry + colour: warping frame t-k with the flow gives frame t where valid
    from pipa_edge.data.flow import warp_np

    prev = out["image_prev"].permute(1, 2, 0).numpy().astype(np.float32)
    cur = out["image"].permute(1, 2, 0).numpy().astype(np.float32)
    warped = warp_np(prev, out["flow"].permute(1, 2, 0).numpy())
    v = out["flow_valid"].numpy()
    assert v.any() and not v[:, :4].any()  # flipped: the left border now has no counterpart
    assert float(np.abs(warped - cur)[v].mean()) < 3.0
    _rgb(tmp_path / "cv/train/images/a_1.png", 0)  # plain CamVid: stills, no sequences
    with pytest.raises(DataError, match="has no sequences"):
        PairDataset(build_dataset(DatasetConfig(type="camvid", root=str(tmp_path / "cv"), labels=False)), 1)


def test_real_dashcam_clip_as_pairs(dashcam_video):
    vd = build_dataset(DatasetConfig(type="video", root=str(dashcam_video), resize=(72, 128), pair_offset=1,
                                     flow="dis"))
    assert len(vd) == 220  # 221 frames → 220 consecutive pairs
    item = vd[10]
    assert item["image"].shape == item["image_prev"].shape == (72, 128, 3) and item["name"] == "solidWhiteRight/000011"
    assert 0.5 < item["flow_valid"].mean() <= 1.0  # highway scene: most pixels have a consistent match


def test_video_start_and_memory_cache_match_on_demand_decoding(tmp_path):
    from pipa_edge.data.classes import CLASS_SETS
    from pipa_edge.data.datasets.video import VideoDataset

    vw = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W * 2, H * 2))
    for i in range(8):
        vw.write(np.full((H * 2, W * 2, 3), 25 * i, np.uint8))
    vw.release()
    cls = CLASS_SETS["camvid11"]
    cached = VideoDataset(tmp_path / "clip.avi", cls, resize=(H, W), start=3, limit=4)
    plain = VideoDataset(tmp_path / "clip.avi", cls, resize=(H, W), start=3, limit=4, cache_mb=0)
    assert len(cached) == 4 and cached[0]["name"] == "clip/000003" and cached[3]["name"] == "clip/000006"
    for i in (2, 0, 3, 1):  # random order
        assert np.array_equal(cached[i]["image"], plain[i]["image"])
    assert sorted(cached._cache) == [(0, k) for k in range(3, 7)] and not plain._cache
    tiny = VideoDataset(tmp_path / "clip.avi", cls, resize=(H, W), cache_mb=1e-4)  # over budget: on demand
    assert abs(int(tiny[5]["image"][5, 5, 0]) - 125) <= 4 and not tiny._cache
    import pickle

    assert not pickle.loads(pickle.dumps(cached))._cache  # workers decode their own
