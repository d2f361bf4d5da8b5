"""`pipa-edge run SOURCE --collect DIR`: the runtime hands every inferred frame to the collector."""

from __future__ import annotations

import numpy as np
import pytest

from pipa_edge.runtime.pipeline import RunOptions
from pipa_edge.runtime.toy import PaletteBackend

pytestmark = pytest.mark.skipif("collect" not in RunOptions.model_fields,
                                reason="the runtime has no --collect hook (pipa_edge/runtime/pipeline.py)")


def test_run_stream_collects_a_verifiable_dataset(tmp_path):
    from pipa_edge.data.datasets.collected import CollectedDataset
    from pipa_edge.runtime.collect.ops import verify_collection
    from pipa_edge.runtime.pipeline import run_stream

    cfg = tmp_path / "collect.yaml"
    cfg.write_text("min_interval_s: 0\nmin_blur_var: 0\nmin_confident_fraction: 0.05\nmax_mean_entropy: 1.0\n"
                   "thresholds: {value: 0.2}\nstability: {frames: 1}\ndedup: {enabled: false}\nqueue_size: 64\n")
    backend = PaletteBackend(input_size=(32, 64), output="logits")
    s = run_stream("test://?width=128&height=64", "none", backend, max_frames=12, log_stats=False,
                   collect=str(tmp_path / "col"), collect_config=str(cfg))
    assert s.frames == 12
    rep = verify_collection(tmp_path / "col")
    assert rep["problems"] == [] and rep["entries"] >= 1
    ds = CollectedDataset(tmp_path / "col")
    item = ds[0]
    assert ds.classes == backend.meta.classes
    assert item["image"].shape == (64, 128, 3) and item["label"].shape == (64, 128)
    assert set(np.unique(item["label"])) - {255} <= set(range(ds.classes.num_classes))


def test_run_cli_collect_options(tmp_path):
    from pipa_edge.cli.main import main

    rc = main(["run", "test://?width=128&height=64", "none", "--model", "builtin:palette", "--input-size", "32x64",
               "--max-frames", "6", "--quiet-stats", "--headless", "--collect", str(tmp_path / "c"),
               "--collect-config", str(tmp_path / "missing.yaml")])
    assert rc == 2  # the config file is named in a one-line error
    rc = main(["run", "test://?width=128&height=64", "none", "--model", "builtin:palette", "--input-size", "32x64",
               "--max-frames", "6", "--quiet-stats", "--headless", "--collect", str(tmp_path / "c")])
    assert rc == 0 and (tmp_path / "c" / "meta.json").is_file() and (tmp_path / "c" / "manifest.jsonl").exists()
