"""The embedded synthetic sim→real generator: determinism, exact labels, domain gap, sequences, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipa_edge.data.classes import CITYSCAPES19, SYNTH11
from pipa_edge.data.synth import GENERATOR_VERSION, SceneStream, SynthDataset, generate
from pipa_edge.data.synth.frame import render_frame
from pipa_edge.data.synth.sequences import frame_rng, loop_world, render_sequence, sequence_world
from pipa_edge.data.synth.styles import get_style
from pipa_edge.data.synth.world import sample_world
from pipa_edge.errors import ConfigError, DataError

H, W = 96, 192
IDX = {n: SYNTH11.index(n) for n in SYNTH11.names}


def _stills(domain: str, n: int, H: int = H, W: int = W, seed: int = 0):
    out = []
    for i in range(n):
        world = sample_world(frame_rng(seed, domain, i, 10**6), get_style(domain))
        out.append(render_frame(world, 0, H, W, frame_rng(seed, domain, i, 0)))
    return out


@pytest.fixture(scope="module")
def stills():
    return {d: _stills(d, 10) for d in ("sim", "real")}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "ds"
    generate(root, 3, 2, n_seq=2, seq_len=3, size=(64, 128), seed=5, progress=False)
    return root


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_layout_and_determinism(tiny_root, tmp_path):
    files = _files(tiny_root)
    for split in ("sim", "real"):
        n = 3 if split == "sim" else 2
        for sub in ("images", "labels"):
            assert [k for k in files if k.startswith(f"{split}/{sub}/")] == \
                [f"{split}/{sub}/{i:05d}.png" for i in range(n)]
    for split in ("sim_seq", "real_seq"):
        for s in ("0000", "0001"):
            for sub in ("images", "labels"):
                assert [k for k in files if k.startswith(f"{split}/{s}/{sub}/")] == \
                    [f"{split}/{s}/{sub}/{t:03d}.png" for t in range(3)]
    meta = json.loads(files["meta.json"])
    assert meta["classes"] == SYNTH11.to_dict() and meta["seed"] == 5 and meta["size"] == [64, 128]
    assert meta["counts"] == {"sim": 3, "real": 2, "sim_seq": 2, "real_seq": 2} and meta["version"] == GENERATOR_VERSION
    # same seed → identical bytes (in a fresh folder and with 2 worker processes); other seed → other images
    again = tmp_path / "again"
    generate(again, 3, 2, n_seq=2, seq_len=3, size=(64, 128), seed=5, progress=False, workers=2)
    assert _files(again) == files
    other = tmp_path / "other"
    generate(other, 3, 2, size=(64, 128), seed=6, progress=False)
    of = _files(other)
    for k in ("sim/images/00000.png", "real/images/00001.png", "sim/labels/00002.png"):
        assert of[k] != files[k]
    # regenerating into an earlier output replaces it (no stale frames); foreign folders are refused
    generate(other, 1, 1, size=(64, 128), seed=6, progress=False)
    assert not (other / "sim" / "images" / "00001.png").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="foreign"):
        generate(foreign, 1, 1, size=(64, 128), progress=False)
    assert not (other / ".synth_incomplete").exists()
    (other / "meta.json").unlink()  # as if interrupted: the marker alone still marks the folder as ours
    (other / ".synth_incomplete").write_text("")
    generate(other, 1, 1, size=(64, 128), seed=6, progress=False)
    assert (other / "meta.json").is_file() and not (other / ".synth_incomplete").exists()
    with pytest.raises(ConfigError, match="seq-len"):
        generate(tmp_path / "bad", 1, 1, n_seq=1, seq_len=1, progress=False)


def test_labels_valid_and_layout_sane(stills):
    seen = {d: set() for d in stills}
    for d, frames in stills.items():
        for img, lab in frames:
            assert img.shape == (H, W, 3) and img.dtype == np.uint8
            assert lab.shape == (H, W) and lab.dtype == np.uint8
            assert lab.max() < SYNTH11.num_classes  # every pixel has a class: nothing left unlabelled
            seen[d] |= set(np.unique(lab).tolist())
            top, low = lab[:H // 8], lab[-H // 8:]
            assert not np.isin(top, [IDX["road"], IDX["sidewalk"], IDX["terrain"]]).any()  # ground is below
            assert (lab[:H // 2] == IDX["sky"]).any() and not (low == IDX["sky"]).any()
            bottom = lab[-H // 10:, W // 3: 2 * W // 3]
            assert (bottom == IDX["road"]).mean() + (bottom == IDX["car"]).mean() > 0.6
    for d in seen:
        missing = set(SYNTH11.names) - {SYNTH11.names[i] for i in seen[d]}
        assert not missing, f"{d}: classes never drawn in 10 frames: {missing}"


def test_sim_image_edges_follow_label_edges(stills):
    """Sim is flat-coloured: colour changes between neighbours happen at label boundaries (alignment)."""
    at_edge, inside = [], []
    for img, lab in stills["sim"]:
        im = img.astype(np.int32)
        for ax in (0, 1):
            d = np.abs(np.diff(im, axis=ax)).sum(-1) > 12
            e = np.diff(lab.astype(np.int32), axis=ax) != 0
            at_edge.append(d[e])
            inside.append(d[~e])
    at_edge, inside = np.concatenate(at_edge), np.concatenate(inside)
    assert at_edge.mean() > 0.75, at_edge.mean()
    assert inside.mean() < 0.06, inside.mean()


def _texture_and_saturation(frames) -> tuple[float, float]:
    """Mean colour change between neighbours of one class (texture, noise) and mean saturation."""
    spread, sat = [], []
    for img, lab in frames:
        f = img.astype(np.float32)
        same = lab[:, 1:] == lab[:, :-1]
        spread.append(np.abs(f[:, 1:] - f[:, :-1]).sum(-1)[same].mean())
        sat.append((f.max(-1) - f.min(-1)).mean())
    return float(np.mean(spread)), float(np.mean(sat))


def test_domains_differ_in_colour_statistics(stills):
    sp_sim, sat_sim = _texture_and_saturation(stills["sim"])
    sp_real, sat_real = _texture_and_saturation(stills["real"])
    assert sp_real > 1.5 * sp_sim, (sp_sim, sp_real)  # textured/noisy vs flat
    assert sat_sim > 1.3 * sat_real, (sat_sim, sat_real)  # saturated vs washed-out camera colours
    road_sim = np.mean([img[lab == IDX["road"]].mean(0) for img, lab in stills["sim"]], 0)
    road_real = np.mean([img[lab == IDX["road"]].mean(0) for img, lab in stills["real"]], 0)
    assert np.abs(road_sim - road_real).max() > 10


@pytest.mark.parametrize("domain", ["sim", "real"])
def test_sequence_temporal_coherence(domain):
    world = sequence_world(domain, 0, f"{domain}_seq", 1)
    frames = list(render_sequence(world, 7, H, W, 0, f"{domain}_seq", 1))
    other = sequence_world(domain, 0, f"{domain}_seq", 2)
    o_img, o_lab = next(render_sequence(other, 1, H, W, 0, f"{domain}_seq", 2))
    agree = [(frames[t][1] == frames[t + 1][1]).mean() for t in range(6)]
    img_d = [np.abs(frames[t][0].astype(np.int32) - frames[t + 1][0]).mean() for t in range(6)]
    assert min(agree) > 0.8, agree  # consecutive labels mostly the same...
    assert max(agree) < 1.0  # ...but the scene moves
    assert (frames[0][1] == frames[6][1]).mean() < np.mean(agree)  # and changes accumulate with time
    assert (frames[0][1] == frames[1][1]).mean() > (frames[0][1] == o_lab).mean()  # unlike another street
    assert np.mean(img_d) < np.abs(frames[0][0].astype(np.int32) - o_img).mean()
    # the ground moves towards the camera: road markings/objects shift down, the horizon stays
    sky_rows = [np.nonzero((lab == IDX["sky"]).any(1))[0].max() for _, lab in frames]
    assert max(sky_rows) - min(sky_rows) <= H // 8


def test_scene_stream_loops_seamlessly_and_yields_copies():
    s = SceneStream(height=64, width=128, seed=3, domain="real", loop_frames=6)
    it = iter(s)
    first = [next(it) for _ in range(6)]
    again = next(it)
    assert again[0].shape == (64, 128, 3) and again[0].dtype == np.uint8 and again[1].shape == (64, 128)
    assert np.array_equal(again[0], first[0][0]) and np.array_equal(again[1], first[1 - 1][1])
    again[0][:] = 0  # callers may draw on frames without corrupting the loop
    assert next(it)[0].any() and s.frame(0)[0].any()
    # the world itself is periodic: frame `loop` rendered from scratch equals frame 0
    w = loop_world("real", 6, 3, "stream_real")
    a = render_frame(w, 0, 64, 128, frame_rng(0, "sim", 0))
    b = render_frame(w, 6, 64, 128, frame_rng(0, "sim", 0))
    assert (a[1] == b[1]).mean() > 0.995 and np.abs(a[0].astype(int) - b[0]).mean() < 1.0
    assert (first[0][1] != first[3][1]).any()  # it moves
    sim = SceneStream(height=64, width=128, seed=3, domain="synth", loop_frames=4)
    assert sim.domain == "sim" and np.array_equal(next(iter(sim))[1], SceneStream(64, 128, 3, "sim", 4).frame(0)[1])
    with pytest.raises(ValueError, match="domain"):
        SceneStream(domain="night")


def test_dataset_reader(tiny_root):
    ds = SynthDataset(tiny_root, "sim")
    assert len(ds) == 3 and ds.classes == SYNTH11 and ds.root == tiny_root
    item = ds[0]
    assert item["name"] == "00000" and item["image"].shape == (64, 128, 3) and item["image"].dtype == np.uint8
    assert item["label"].shape == (64, 128) and item["label"].dtype == np.uint8
    seq = SynthDataset(tiny_root, "real_seq", labels=False)
    assert len(seq) == 6 and seq[4]["name"] == "0001/001" and "label" not in seq[4]
    assert seq.sequences() == {"0000": [0, 1, 2], "0001": [3, 4, 5]}
    cs = SynthDataset(tiny_root, "sim", classes=CITYSCAPES19)
    lab, lab19 = ds[1]["label"], cs[1]["label"]
    for name in ("road", "car", "sky"):
        assert np.array_equal(lab == SYNTH11.index(name), lab19 == CITYSCAPES19.index(name))
    with pytest.raises(DataError, match="pipa-edge data synth"):
        SynthDataset(tiny_root.parent / "absent", "sim")
    with pytest.raises(DataError, match="split"):
        SynthDataset(tiny_root, "night")


def test_cli_synth_and_info(tmp_path, capsys):
    from pipa_edge.cli.main import main

    out = tmp_path / "cli"
    assert main(["data", "synth", str(out), "--n-sim", "2", "--n-real", "1", "--n-seq", "1", "--seq-len", "2",
                 "--size", "48", "96", "--seed", "1"]) == 0
    assert len(SynthDataset(out, "sim")) == 2 and len(SynthDataset(out, "sim_seq")) == 2
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "traffic sign" in text and "real_seq" in text
    assert main(["data", "info", str(tmp_path / "missing")]) == 2
    assert main(["data", "synth", str(out), "--n-seq", "1", "--seq-len", "1"]) == 2
