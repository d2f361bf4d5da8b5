"""Temporal filter: EMA + hysteresis semantics, NumPy ≡ torch module, stateful graph exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest

from pipa_edge.runtime.temporal import TemporalFilter, TemporalState, filter_step, flip_rate, softmax


def _probs(*rows):
    """(1, K, 1, len(rows)) probabilities, one pixel per row."""
    p = np.asarray(rows, np.float32).T[None, :, None, :]
    return p


def test_softmax_matches_definition():
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 4)).astype(np.float32) * 30
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(softmax(x), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_no_smoothing_is_argmax():
    x = np.random.default_rng(1).normal(size=(1, 4, 8, 8)).astype(np.float32)
    f = TemporalFilter(enabled=False)
    np.testing.assert_array_equal(f.update(x), x.argmax(1))
    g = TemporalFilter(alpha=1.0, delta=0.0, persist=1)  # every mechanism switched off
    for _ in range(3):
        x = np.random.default_rng().normal(size=(1, 4, 8, 8)).astype(np.float32)
        np.testing.assert_array_equal(g.update(x), x.argmax(1))


def test_hysteresis_keeps_label_until_margin_or_persistence():
    f = TemporalFilter(alpha=1.0, delta=0.2, persist=3)  # no EMA: isolate the hysteresis
    assert f.update(_probs([0.9, 0.1]), "probs")[0, 0, 0] == 0
    # class 1 wins by 0.1 < delta: label kept for 2 frames, switches on the 3rd (persistence)
    seq = [f.update(_probs([0.45, 0.55]), "probs")[0, 0, 0] for _ in range(3)]
    assert seq == [0, 0, 1]
    # a clear win (margin 0.6 >= delta) switches at once
    assert f.update(_probs([0.8, 0.2]), "probs")[0, 0, 0] == 0


def test_persistence_needs_the_same_challenger():
    f = TemporalFilter(alpha=1.0, delta=0.5, persist=2)
    f.update(_probs([0.5, 0.3, 0.2]), "probs")
    a = f.update(_probs([0.3, 0.4, 0.3]), "probs")[0, 0, 0]  # challenger 1 (count 1)
    b = f.update(_probs([0.3, 0.3, 0.4]), "probs")[0, 0, 0]  # challenger 2 (count restarts)
    c = f.update(_probs([0.3, 0.3, 0.4]), "probs")[0, 0, 0]  # challenger 2 persists → switch
    assert (a, b, c) == (0, 0, 2)


def test_ema_smooths_a_single_frame_glitch():
    f = TemporalFilter(alpha=0.3, delta=0.0, persist=100)
    f.update(_probs([0.8, 0.2]), "probs")
    glitch = f.update(_probs([0.2, 0.8]), "probs")  # EMA: 0.3*0.2+0.7*0.8 = 0.62 for class 0
    assert glitch[0, 0, 0] == 0
    np.testing.assert_allclose(f.state.ema[0, :, 0, 0], [0.62, 0.38], atol=1e-6)


def test_flip_rate_drops_with_smoothing_on_noisy_input():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 5, 32, 32)).astype(np.float32) * 2
    raw, smooth = TemporalFilter(enabled=False), TemporalFilter(alpha=0.4, delta=0.1, persist=3)
    prev_r = prev_s = None
    fr_r, fr_s = [], []
    for _ in range(30):
        x = base + rng.normal(size=base.shape).astype(np.float32) * 1.5
        r, s = raw.update(x), smooth.update(x)
        if prev_r is not None:
            fr_r.append(flip_rate(prev_r, r))
            fr_s.append(flip_rate(prev_s, s))
        prev_r, prev_s = r, s
    assert np.mean(fr_s) < 0.5 * np.mean(fr_r)


def test_label_only_backend_degrades_to_persistence():
    f = TemporalFilter(alpha=0.5, delta=0.1, persist=2)
    lab = lambda v: np.full((1, 2, 2), v, np.uint8)  # noqa: E731
    assert f.update(lab(3), "labels")[0, 0, 0] == 3
    assert f.update(lab(4), "labels")[0, 0, 0] == 3  # one frame is not enough
    assert f.update(lab(4), "labels")[0, 0, 0] == 4
    assert f.state.ema is None


def test_state_shape_change_reinitialises():
    f = TemporalFilter()
    f.update(np.zeros((1, 3, 4, 4), np.float32))
    out = f.update(np.random.default_rng(0).normal(size=(1, 3, 6, 5)).astype(np.float32))
    assert out.shape == (1, 6, 5)


def test_torch_module_identical_math_and_onnx_export(tmp_path):
    torch = pytest.importorskip("torch")
    from pipa_edge.runtime.temporal import StatefulSegmenter, TemporalFilterModule

    alpha, delta, k = 0.4, 0.15, 3
    mod = TemporalFilterModule(alpha, delta, k)
    rng = np.random.default_rng(3)
    shape = (2, 4, 6, 7)
    st = TemporalState.empty(2, 4, shape[2:])
    tst = [torch.zeros(shape), torch.full((2, 6, 7), -1, dtype=torch.int32),
           torch.full((2, 6, 7), -1, dtype=torch.int32), torch.zeros((2, 6, 7), dtype=torch.int32)]
    base = rng.normal(size=shape).astype(np.float32)
    for _ in range(8):
        x = base + rng.normal(size=shape).astype(np.float32)
        lab_np, st = filter_step(softmax(x), st, alpha, delta, k)
        lab_t, ema_t, pend_t, cnt_t = mod(torch.from_numpy(x), *tst)
        tst = [ema_t, lab_t, pend_t, cnt_t]
        np.testing.assert_array_equal(lab_t.numpy(), lab_np)
        np.testing.assert_allclose(ema_t.numpy(), st.ema, atol=1e-6)
        np.testing.assert_array_equal(cnt_t.numpy(), st.count)
        np.testing.assert_array_equal(pend_t.numpy(), st.pending)

    # the stateful graph (frame + state in, labels + state out) exports and runs in onnxruntime
    ort = pytest.importorskip("onnxruntime")
    net = torch.nn.Conv2d(3, 4, 3, padding=1)
    graph = StatefulSegmenter(net, alpha, delta, k).eval()
    img = torch.from_numpy(rng.normal(size=(1, 3, 6, 7)).astype(np.float32))
    state = (torch.zeros(1, 4, 6, 7), torch.full((1, 6, 7), -1, dtype=torch.int32),
             torch.full((1, 6, 7), -1, dtype=torch.int32), torch.zeros(1, 6, 7, dtype=torch.int32))
    path = tmp_path / "stateful.onnx"
    names = ["image", "ema_in", "label_in", "pending_in", "count_in"]
    torch.onnx.export(graph, (img, *state), str(path), dynamo=False, opset_version=17, input_names=names,
                      output_names=["label", "ema", "pending", "count"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = dict(zip(names, [t.numpy() for t in (img, *state)]))
    for _ in range(3):
        outs = sess.run(None, feeds)
        with torch.no_grad():
            ref = graph(*[torch.from_numpy(feeds[n]) for n in names])
        np.testing.assert_array_equal(outs[0], ref[0].numpy())
        np.testing.assert_allclose(outs[1], ref[1].numpy(), atol=1e-5)
        feeds.update(ema_in=outs[1], label_in=outs[0], pending_in=outs[2], count_in=outs[3])
        feeds["image"] = rng.normal(size=(1, 3, 6, 7)).astype(np.float32)
