"""Training-step benchmark: same batch, three methods, memory reported (no timing asserted)."""

from __future__ import annotations

import pytest

from pipa_edge.bench.train_step import METHODS, default_adapt_config, synthetic_batch


def test_synthetic_batch_layout():
    from pipa_edge.data.classes import get_class_set

    cs = get_class_set("synth11")
    b = synthetic_batch(cs, 2, (32, 64))
    assert tuple(b["source"]["image"].shape) == (2, 3, 32, 64) and b["source"]["image"].dtype.is_floating_point is False
    assert int(b["source"]["label"].max()) < cs.num_classes
    assert tuple(b["target"]["image"].shape) == (2, 3, 32, 64)


def test_default_config_turns_pipa_objectives_on():
    cfg = default_adapt_config()
    assert cfg.pixel_contrast.enabled and cfg.patch_contrast.enabled and cfg.sampler.kind == "task_smart"
    assert default_adapt_config(["sampler.kind=random"]).sampler.kind == "random"


def test_three_methods_same_batch(tmp_path):
    """Through the CLI (``--train``); the rows are what :func:`bench_train_step` returns."""
    import json

    from pipa_edge.cli.main import main

    assert main(["bench", "--train", "--train-arch", "segformer-b0", "--train-imgsz", "64", "--train-batch", "1",
                 "--train-iters", "2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["train"]
    assert [r["method"] for r in rows] == list(METHODS)
    by = {r["method"]: r for r in rows}
    for r in rows:
        assert r["step_ms"]["n"] == 2 and len(r["samples_ms"]) == 2
        assert r["memory"]["kind"] == "cpu_rss_sampled" and r["memory"]["peak_mb"] > 0
    assert by["source_only"]["p50_vs_first"] == pytest.approx(1.0)
    # the teacher is not trained; PiPa++ adds projection heads
    assert by["mean_teacher"]["trainable_params"] == by["source_only"]["trainable_params"]
    assert by["pipa"]["trainable_params"] > by["mean_teacher"]["trainable_params"]
