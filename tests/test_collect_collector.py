"""The collector's threading contract: non-blocking offer, bounded queue, logits, worker errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipa_edge.data.classes import CAMVID11
from pipa_edge.runtime.collect.collector import Collector
from pipa_edge.data.datasets.collected import CollectedDataset

from test_collect_store import easy_cfg, sample


def test_full_queue_drops_offers_and_counts_them(tmp_path):
    cfg = easy_cfg().model_copy(update={"queue_size": 2})
    col = Collector(tmp_path / "d", cfg, CAMVID11)
    entered, release = threading.Event(), threading.Event()
    real = col._process

    def slow(*a):
        entered.set()
        release.wait(10)
        return real(*a)

    col._process = slow
    col.offer(*sample(0), t=0.0)
    assert entered.wait(10)  # the worker holds offer 0
    for i in range(1, 8):
        col.offer(*sample(i), t=float(i))  # 2 fit in the queue, 5 are dropped, none blocks
    assert col.n_dropped == 5
    release.set()
    st = col.close()
    assert st["offered"] == 8 and st["dropped"] == 5 and st["analysed"] == 3 and st["saved"] == 3


def test_logits_are_softmaxed_on_the_worker(tmp_path):
    frame, probs = sample(3)
    logits = np.log(probs) + 7.0  # softmax(log p + c) == p
    with Collector(tmp_path / "a", easy_cfg(image_format="png"), CAMVID11) as a:
        a.offer(frame, probs, t=0.0)
    with Collector(tmp_path / "b", easy_cfg(image_format="png"), CAMVID11) as b:
        b.offer(frame, logits, t=0.0, kind="logits")
    la, lb = CollectedDataset(tmp_path / "a")[0]["label"], CollectedDataset(tmp_path / "b")[0]["label"]
    assert np.array_equal(la, lb) and (la != 255).all()
    with Collector(tmp_path / "c", easy_cfg(), CAMVID11) as c, pytest.raises(ValueError, match="kind"):
        c.offer(frame, probs, kind="labels")


def test_worker_error_is_counted_warned_once_and_offers_continue(tmp_path, capsys):
    col = Collector(tmp_path / "e", easy_cfg(), CAMVID11)
    bad = np.full((5, 8, 8), 0.2, np.float32)  # 5 classes for an 11-class collector
    for i in range(3):
        col.offer(sample(i)[0], bad, t=float(i))
        col.flush()
    col.offer(*sample(9), t=9.0)
    st = col.close()
    assert st["errors"] == 3 and st["saved"] == 1
    assert capsys.readouterr().err.count("collector error") == 1


def test_reopening_continues_numbering_and_keeps_dedup_state(tmp_path):
    cfg = easy_cfg().model_copy(update={"dedup": easy_cfg().dedup.model_copy(update={"enabled": True})})
    with Collector(tmp_path / "r", cfg, CAMVID11) as col:
        col.offer(*sample(1), t=0.0)
    with Collector(tmp_path / "r", cfg, CAMVID11) as col:
        col.offer(*sample(1), t=100.0)  # the same frame again after a restart: a duplicate
        col.offer(*sample(2), t=101.0)
        col.flush()
        assert col.rejected == {"duplicate": 1} and col.n_saved == 1
    assert [r.name for r in CollectedDataset(tmp_path / "r").records] == ["0000001", "0000002"]


def test_open_collector_for_a_backend(tmp_path):
    from pipa_edge.errors import ConfigError
    from pipa_edge.runtime.backends.base import Backend, ModelMeta
    from pipa_edge.runtime.collect.runtime import open_collector

    model = tmp_path / "m.onnx"
    model.write_bytes(b"graph")

    class Fake(Backend):
        name = "onnxruntime"

        def __init__(self, output):
            self.path = model
            self.meta = ModelMeta(CAMVID11, (16, 24), (0.5,) * 3, (0.5,) * 3, output=output)

        def infer(self, frames):
            return np.zeros((len(frames), CAMVID11.num_classes, 16, 24), np.float32)

    cfg = tmp_path / "c.yaml"
    cfg.write_text("min_interval_s: 0\nstability: {frames: 1}\n")
    col = open_collector(tmp_path / "col", cfg, Fake("logits"), source="file://a.mp4")
    assert col.cfg.min_interval_s == 0 and col.model_info["backend"] == "onnxruntime"
    import hashlib
    assert col.model_info["sha256"] == hashlib.sha256(b"graph").hexdigest()
    col.close()
    with pytest.raises(ConfigError, match="outputs 'labels'"):
        open_collector(tmp_path / "col2", None, Fake("labels"))
