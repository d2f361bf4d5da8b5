"""`run --collect DIR --adapt-every N`: re-estimated models swap in between frames; a failure keeps the model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _export_util import quick_cfg  # noqa: E402
from test_adapt_bn_onnx import _trained_like, _write_frames  # noqa: E402

pytest.importorskip("torch")

ACCEPT_ALL = ["thresholds.value=0", "min_confident_fraction=0", "max_mean_entropy=1", "min_blur_var=0",
              "min_interval_s=0", "stability.frames=1", "dedup.enabled=false", "queue_size=64"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from pipa_edge.export.exporter import export

    d = tmp_path_factory.mktemp("lraspp")
    return export(_trained_like("lraspp-mbv3", d), quick_cfg(d)).files["onnx"]


def _stream(model, tmp_path, frames: int = 160):
    from pipa_edge.runtime.pipeline import run_stream

    _write_frames(tmp_path / "cam", 12)
    seen = []

    def slow(f, labels):  # a camera's pace: leaves the background re-estimation time to finish
        seen.append(f.index)
        time.sleep(0.03)

    summary = run_stream(str(tmp_path / "cam"), "none", str(model), loop=True, drop=False, max_frames=frames,
                         collect=str(tmp_path / "coll"), collect_set=ACCEPT_ALL, adapt_every=8, on_frame=slow,
                         log_stats=False)
    return summary, seen


def test_adapt_every_swaps_between_frames(model, tmp_path, capsys):
    summary, seen = _stream(model, tmp_path)
    cap = capsys.readouterr()
    out = cap.out + cap.err
    adapted = sorted((tmp_path / "coll-adapted").glob("*.a*.onnx"))
    assert adapted, out[-2000:]
    assert "swapped in lraspp-mbv3.a1.onnx between frames" in out.replace("\n", " ")
    assert len(seen) == 160 and summary.dropped == 0  # the stream went on through the swap


def test_failed_adaptation_keeps_the_model(model, tmp_path, capsys, monkeypatch):
    import pipa_edge.runtime.bn_adapt as bn_adapt

    def broken(*a, **k):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(bn_adapt, "adapt_bn_onnx", broken)
    summary, seen = _stream(model, tmp_path, frames=60)
    cap = capsys.readouterr()
    out = (cap.out + cap.err).replace("\n", " ")
    assert "kept the current model" in out and "simulated failure" in out
    assert len(seen) == 60 and not list((tmp_path / "coll-adapted").glob("*.onnx"))


def test_adapt_every_needs_collect_and_an_onnx(model, tmp_path):
    from pipa_edge.errors import ConfigError
    from pipa_edge.runtime.pipeline import run_stream

    _write_frames(tmp_path / "cam", 2)
    with pytest.raises(ConfigError, match="--adapt-every needs --collect"):
        run_stream(str(tmp_path / "cam"), "none", str(model), adapt_every=8, log_stats=False)


def test_bad_adapt_options_open_nothing(model, tmp_path):
    """A ConfigError from --adapt-every comes before the collector (thread + folder lock) is opened."""
    import threading

    from pipa_edge.errors import ConfigError
    from pipa_edge.runtime.pipeline import run_stream

    _write_frames(tmp_path / "cam", 2)
    with pytest.raises(ConfigError, match="--adapt-every 4: need at least 8"):
        run_stream(str(tmp_path / "cam"), "none", str(model), collect=str(tmp_path / "coll"), adapt_every=4,
                   log_stats=False)
    assert not any(t.name == "pipa-collect" for t in threading.enumerate())
    assert not (tmp_path / "coll").exists()


class _FakeBackend:
    def __init__(self):
        from types import SimpleNamespace

        self.meta = SimpleNamespace(input_size=(32, 64), output="logits")
        self.closed = 0

    def infer(self, x):
        return x

    def close(self):
        self.closed += 1


def test_close_while_adapting_closes_the_late_backend_once(model, tmp_path, monkeypatch):
    """close() gives up waiting; the re-estimation that finishes later must not publish its backend."""
    import threading
    from types import SimpleNamespace

    import pipa_edge.runtime.bn_adapt as bn_adapt
    import pipa_edge.runtime.backends as backends
    from pipa_edge.runtime.adapt_swap import AdaptSwap

    go, loaded = threading.Event(), []

    def slow_adapt(*a, **k):
        go.wait(10)
        return {"frames": {"count": 8}, "seconds": 0.1, "change": {"mean_abs_dmean_sd": 0.1, "mean_abs_dlogvar": 0.1}}

    def load(*a, **k):
        loaded.append(_FakeBackend())
        return loaded[-1]

    monkeypatch.setattr(bn_adapt, "adapt_bn_onnx", slow_adapt)
    monkeypatch.setattr(backends, "load_backend", load)
    swap = AdaptSwap(model, tmp_path / "coll", 8, SimpleNamespace(n_saved=8))
    running = _FakeBackend()
    assert swap.between_frames(running) is running and swap._job.is_alive()
    summary = swap.close(timeout=0.05)
    assert swap._job.is_alive() and summary["swaps"] == 0
    go.set()
    swap._job.join(10)
    assert len(loaded) == 1 and loaded[0].closed == 1  # closed by the late job, exactly once
    assert swap._ready is None and swap._owned == []
    assert swap.between_frames(running) is running and running.closed == 0
    swap.close()
    assert loaded[0].closed == 1
