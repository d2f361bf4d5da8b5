"""Stateful export: the temporal filter inside the ONNX graph, state carried by the ORT backend."""

from __future__ import annotations

import numpy as np
import pytest

from _export_util import SIZE, make_ckpt, quick_cfg
from pipa_edge.errors import ConfigError
from pipa_edge.export.exporter import export
from pipa_edge.runtime.backends import load_backend
from pipa_edge.runtime.temporal import TemporalFilter

ALPHA, DELTA, PERSIST = 0.4, 0.1, 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("stateful")
    ckpt = make_ckpt(d, "lraspp-mbv3")
    cfg = quick_cfg(d, parity={"n": 4},
                    temporal={"enabled": True, "alpha": ALPHA, "delta": DELTA, "persist": PERSIST})
    return ckpt, export(ckpt, cfg)


def noisy_frames(n: int, seed: int = 5) -> np.ndarray:
    """A still scene with per-frame noise: the case the filter exists for."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, *SIZE, 3)).astype(np.int16)
    return [np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_export_writes_gated_stateful_graph(exported):
    _, res = exported
    path = res.files["onnx_stateful"]
    assert res.deployed == path
    rep = res.parity["ONNX stateful"]
    assert rep.passed and rep.agreement >= 0.999 and rep.frames == 4
    import onnx

    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == ["frame", "ema", "label", "pending", "count"]
    assert [o.name for o in g.output] == ["labels", "ema_out", "label_out", "pending_out", "count_out"]
    assert g.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    with load_backend(path) as b:
        assert b.stateful and b.meta.output == "labels" and b.meta.output_resolution == "model"
        st = b.meta.extra["stateful"]
        assert (st["alpha"], st["delta"], st["persist"]) == (ALPHA, DELTA, PERSIST)
        assert st["state_inputs"] == ["ema", "label", "pending", "count"]


def test_backend_carries_state_like_numpy_filter(exported):
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    ckpt, res = exported
    ref = TorchBackend(segmenter=load_segmenter(ckpt), input_size=SIZE, output="logits", output_resolution="model")
    filt = TemporalFilter(ALPHA, DELTA, PERSIST)
    frames = noisy_frames(8)
    with load_backend(res.files["onnx_stateful"]) as b:
        got, emas = [], []
        for x in frames:
            got.append(b.infer(x))
            emas.append(b._state["ema"].copy())
        for x, g in zip(frames, got):
            want = filt.update(ref.infer(x), "logits")
            assert g.dtype == np.uint8 and g.shape == want.shape
            assert np.mean(g == want) >= 0.999
            np.testing.assert_allclose(emas.pop(0), filt.state.ema, atol=1e-4)  # the carried EMA state
        b.reset_state()  # a new stream starts over: same frames → same labels and state
        np.testing.assert_array_equal(b.infer(frames[0]), got[0])
        np.testing.assert_array_equal(b._state["label"], got[0].astype(np.int32))
        b.infer(frames[1])
        solo = load_backend(res.files["onnx_stateful"])
        solo.infer(frames[1])  # frame 1 without its history: a different EMA
        assert np.abs(b._state["ema"] - solo._state["ema"]).max() > 1e-4


def test_run_stream_with_stateful_onnx(exported, tmp_path):
    pytest.importorskip("gi")
    from pipa_edge.runtime import run_stream

    _, res = exported
    out = tmp_path / "o"
    s = run_stream("test://?width=256&height=128", str(out) + "/", str(res.files["onnx_stateful"]), max_frames=5,
                   log_stats=False)
    assert s.frames == 5
    assert len(list(out.glob("*"))) == 5


def test_stateful_needs_static_shapes(exported, tmp_path):
    ckpt, _ = exported
    with pytest.raises(ConfigError, match="temporal.enabled"):
        export(ckpt, quick_cfg(tmp_path, dynamic=True, temporal={"enabled": True}))


def test_cli_flag_sets_temporal():
    import argparse

    from pipa_edge.cli import export as cli

    p = argparse.ArgumentParser()
    cli.add_parser(p.add_subparsers())
    args = p.parse_args(["export", "x.pt", "--stateful", "--set", "temporal.alpha=0.3"])
    cfg = cli.config_from_args(args)
    assert cfg.temporal.enabled and cfg.temporal.alpha == 0.3
    assert not cli.config_from_args(p.parse_args(["export", "x.pt"])).temporal.enabled
