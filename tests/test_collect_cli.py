"""``pipa-edge collect stats|verify|prune`` and the 'collected' dataset type."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipa_edge.cli.main import main
from pipa_edge.data.classes import CAMVID11
from pipa_edge.data.collection import read_manifest, replay
from pipa_edge.runtime.collect.collector import Collector
from pipa_edge.runtime.collect.ops import prune_collection, verify_collection

from test_collect_store import easy_cfg, sample


@pytest.fixture
def collection(tmp_path):
    root = tmp_path / "col"
    col = Collector(root, easy_cfg(), CAMVID11, {"sha256": "a" * 64, "backend": "torch"}, source="file://v.mp4")
    for i in range(6):
        col.offer(*sample(i), t=float(i))
    col.close()
    return root


def test_stats_json(collection, capsys):
    assert main(["collect", "stats", str(collection), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    live = replay(read_manifest(collection)[0])
    assert st["samples"] == 6 and st["classes"] == "camvid11" and st["sources"] == ["file://v.mp4"]
    assert st["bytes"] == sum(f["bytes"] for e in live.values() for f in e["files"].values())
    hist = np.sum([e["class_hist"] for e in live.values()], axis=0)
    assert list(st["class_pixels"].values()) == [int(x) for x in hist]
    assert main(["collect", "stats", str(collection)]) == 0
    assert "camvid11" in capsys.readouterr().out


def test_verify_exit_codes(collection, capsys):
    assert main(["collect", "verify", str(collection)]) == 0
    assert "6 entries, 0 problem(s), 0 orphan(s): ok" in capsys.readouterr().out
    (collection / "images" / "0000003.jpg").write_bytes(b"not a jpeg")
    (collection / "labels" / "9999999.png").write_bytes(b"orphan")
    assert main(["collect", "verify", str(collection)]) == 1
    out = capsys.readouterr().out
    assert "problem: 0000003: images/0000003.jpg has 10 bytes" in out and "orphan: labels/9999999.png" in out


def test_missing_dir_is_one_line_exit_2(tmp_path, capsys):
    for action in ("stats", "verify", "prune"):
        assert main(["collect", action, str(tmp_path / "nope")]) == 2
        err = capsys.readouterr().err
        assert "collection folder not found" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main(["collect", "stats", str(tmp_path / "empty")]) == 2
    assert "no meta.json" in capsys.readouterr().err


def test_prune_applies_new_quota_and_thresholds(collection, capsys):
    assert main(["collect", "prune", str(collection), "--max-samples", "4", "--policy", "oldest", "--dry-run"]) == 0
    assert len(replay(read_manifest(collection)[0])) == 6  # dry run changes nothing
    assert main(["collect", "prune", str(collection), "--max-samples", "4", "--policy", "oldest"]) == 0
    live = replay(read_manifest(collection)[0])
    assert list(live) == ["0000003", "0000004", "0000005", "0000006"]
    size = sum(f["bytes"] for e in live.values() for f in e["files"].values())
    rep = prune_collection(collection, max_bytes=size // 2)
    assert rep["bytes"] <= size // 2 and rep["kept"] < 4
    assert verify_collection(collection) == {"entries": rep["kept"], "problems": [], "orphans": []}
    rep = prune_collection(collection, min_confident_fraction=1.01)  # nothing reaches it
    assert rep["kept"] == 0 and verify_collection(collection)["entries"] == 0


def test_prune_quota_per_class(collection):
    # sample i holds classes i % 11 and (7i + 3) % 11: only sample 4 (i=3: road, pole) has every
    # class in another sample too (road in i=0, pole in i=2)
    rep = prune_collection(collection, quota_per_class=1, presence=0.01)
    assert rep["removed"] == ["0000004"]
    live = replay(read_manifest(collection)[0])
    counts = np.zeros(11, int)
    for e in live.values():
        counts += np.asarray(e["class_hist"]) > 0
    for e in live.values():
        present = np.asarray(e["class_hist"]) > 0
        assert np.any(counts[present] <= 1)


def test_build_dataset_dispatches_collected(collection):
    from pipa_edge.data.build import build_dataset

    ds = build_dataset({"type": "collected", "root": str(collection), "limit": 3, "resize": [16, 24]})
    item = ds[0]
    assert len(ds) == 3 and ds.classes == CAMVID11
    assert item["image"].shape == (16, 24, 3) and item["label"].shape == (16, 24)
    tgt = build_dataset({"type": "collected", "root": str(collection), "labels": False})
    assert "label" not in tgt[0] and len(tgt) == 6


def test_readapt_recipe_matches_the_trainer_schema():
    from pathlib import Path

    from pipa_edge.train.config import load_train_config

    recipe = Path(__file__).resolve().parents[1] / "train" / "readapt_collected.yaml"
    cfg = load_train_config(recipe, ["source.root=/somewhere/collect"])
    assert cfg.source.type == "collected" and cfg.source.labels and cfg.init_from
    assert cfg.method == "source_only" and cfg.target is None
    # the documented mean-teacher variant validates too
    mt = load_train_config(recipe, ["method=mean_teacher", "source.type=camvid", "source.root=/d/camvid",
                                    "source.split=day_train",
                                    "target={type: collected, root: /somewhere/collect, labels: false}"])
    assert mt.target.type == "collected" and mt.target.labels is False and mt.method == "mean_teacher"


def test_adabn_takes_statistics_from_a_collection(collection, tmp_path):
    """The flywheel's training-free step: BN statistics of a deployed model from the collected frames."""
    import torch

    from pipa_edge.models.io import load_segmenter, save_segmenter
    from pipa_edge.models.zoo import build_segmenter

    torch.manual_seed(0)
    ck = save_segmenter(tmp_path / "deployed.pt", build_segmenter("lraspp-mbv3", CAMVID11))
    out = tmp_path / "deployed_adabn.pt"
    assert main(["adabn", str(ck), "--data", f"collected:{collection}", "--imgsz", "32", "32",
                 "--batch-size", "3", "--device", "cpu", "--out", str(out)]) == 0
    old, new = load_segmenter(ck).state_dict(), load_segmenter(out).state_dict()
    diff = [k for k in old if not torch.equal(old[k], new[k])]
    assert diff and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in diff)
    assert int(new[[k for k in diff if k.endswith("num_batches_tracked")][0]]) == 2  # 6 frames, 2 batches
