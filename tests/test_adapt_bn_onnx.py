"""On-device BN re-estimation (issue 25): export companion, NumPy re-fold, `adapt-bn` vs torch adabn."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _export_util import SIZE, quick_cfg  # noqa: E402

torch = pytest.importorskip("torch")


def _trained_like(arch: str, folder: Path) -> Path:
    """A checkpoint whose BN layers have non-trivial affine and statistics (as after training)."""
    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.models import build_segmenter, save_segmenter

    torch.manual_seed(0)
    m = build_segmenter(arch, SYNTH11).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.3, 0.3)
    return save_segmenter(folder / f"{arch}.pt", m)


def _write_frames(folder: Path, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` PNG frames at the model size: smooth colour fields, darker than ImageNet (a "dusk" shift)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        small = rng.integers(0, 120, (8, 16, 3)).astype(np.uint8)
        img = cv2.resize(small, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        out.append(img)
    return out


@pytest.fixture(scope="module", params=["lraspp-mbv3", "segformer-b0"])
def exported(request, tmp_path_factory):
    from pipa_edge.export.exporter import export

    d = tmp_path_factory.mktemp(request.param)
    ckpt = _trained_like(request.param, d)
    res = export(ckpt, quick_cfg(d))
    return ckpt, res.files["onnx"]


def test_export_writes_companion_and_zero_change_refold_is_identity(exported):
    import onnx

    from pipa_edge.runtime.bn_adapt import companion_paths, load_companion
    from pipa_edge.runtime.bn_refold import refold
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import read_sidecar

    _, model = exported
    comp, stats = companion_paths(model)
    assert comp.is_file() and stats.is_file()
    _, layers, _ = load_companion(model)
    assert layers and all(la.targets for la in layers)
    same = refold(onnx.load(str(model)), layers, [(la.mean, la.var) for la in layers])
    p = model.with_name("same.onnx")
    onnx.save(same, str(p))
    x = np.random.default_rng(1).integers(0, 256, (2, *SIZE, 3), dtype=np.uint8)
    meta = read_sidecar(model)
    a, b = OrtBackend(model).infer(x), OrtBackend(p, meta=meta).infer(x)
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))


def test_adapt_bn_matches_torch_adabn_on_the_same_frames(exported, tmp_path):
    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx, batch_sizes, load_companion
    from pipa_edge.export.parity import compare
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import read_sidecar
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.train.precise_bn import bn_layers, recompute_bn_stats

    ckpt, model = exported
    imgs = _write_frames(tmp_path / "frames", 12)
    out = tmp_path / "adapted.onnx"
    rep = adapt_bn_onnx(model, tmp_path / "frames", out, batch_size=5, show_progress=False)
    assert rep["frames"]["count"] == 12 and rep["batches"] == 3 and rep["change"]["mean_abs_dmean_sd"] > 0.05
    # torch adabn's estimator on the same frames, same batches (4, 4, 4 = near-equal, at most 5)
    seg = load_segmenter(ckpt)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    sizes = batch_sizes(12, 5)
    assert sizes == [4, 4, 4]
    batches = list(torch.split(x, sizes))
    assert recompute_bn_stats(seg, batches) == 3
    _, layers, _ = load_companion(out)  # the new model's companion holds the new statistics
    bns = dict(seg.named_modules())
    for la in layers:
        assert np.allclose(la.mean, bns[la.name].running_mean.double().numpy(), rtol=1e-4, atol=1e-5)
        assert np.allclose(la.var, bns[la.name].running_var.double().numpy(), rtol=1e-3, atol=1e-5)
    assert len(layers) == len(bn_layers(seg))
    meta = read_sidecar(out)
    ref = TorchBackend(segmenter=seg, input_size=SIZE, output=meta.output, output_resolution=meta.output_resolution)
    rep_par = compare(ref, OrtBackend(out), np.stack(imgs), "test frames")
    assert rep_par.agreement >= 0.999 and rep_par.max_abs < 1e-3, rep_par.line()
    # the adaptation changed the model (it is not the identity)
    before = compare(ref, OrtBackend(model), np.stack(imgs), "test frames")
    assert before.max_abs > 10 * rep_par.max_abs
    rec = meta.extra["bn_adaptations"][-1]
    assert rec["frames"]["sha12"] and rec["frames"]["count"] == 12 and rec["from_model"] == model.name


def test_refold_splits_a_constant_shared_between_layers():
    import onnx
    from onnx import helper, numpy_helper

    from pipa_edge.runtime.bn_refold import BNLayer, refold

    w = np.ones((2, 3, 1, 1), np.float32)
    init = [numpy_helper.from_array(w, "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Conv", ["x", "w"], ["b"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])],
                          [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in "ab"], init)
    one = np.ones(2)
    la = [BNLayer(f"bn{i}", one, np.zeros(2), np.zeros(2), one.copy(), 0.0,
                  [{"node": i, "input": 1, "role": "scale", "axis": 0}]) for i in range(2)]
    out = refold(helper.make_model(g), la, [(np.zeros(2), np.full(2, 4.0)), (np.zeros(2), np.full(2, 0.25))])
    vals = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    a, b = (vals[n.input[1]] for n in out.graph.node)
    assert np.allclose(a, 0.5) and np.allclose(b, 2.0) and np.allclose(vals["w"], 1.0)


def test_too_few_frames_and_never_overwrite(exported, tmp_path, capsys):
    from pipa_edge.cli.main import main
    from pipa_edge.errors import ConfigError, DataError
    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx
    from pipa_edge.fileio import file_sha256

    _, model = exported
    _write_frames(tmp_path / "few", 3)
    with pytest.raises(DataError, match="3 frame"):
        adapt_bn_onnx(model, tmp_path / "few", tmp_path / "x.onnx", show_progress=False)
    assert main(["adapt-bn", str(model), "--frames", str(tmp_path / "few")]) == 2
    err = capsys.readouterr().err.strip()
    assert "need at least 8" in err and len(err.splitlines()) == 1
    sha = file_sha256(model)
    _write_frames(tmp_path / "many", 8)
    with pytest.raises(ConfigError, match="overwrite"):
        adapt_bn_onnx(model, tmp_path / "many", model, show_progress=False)
    assert file_sha256(model) == sha and not (tmp_path / "x.onnx").exists()
