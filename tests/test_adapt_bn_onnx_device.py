"""`pipa-edge adapt-bn` on the device path: no torch imported, frames from a collection and a video."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _export_util import SIZE, quick_cfg  # noqa: E402
from test_adapt_bn_onnx import _trained_like  # noqa: E402

pytest.importorskip("torch")

BLOCK = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "segmentation_models_pytorch", "onnxsim"):
                raise ImportError(f"blocked on the device path: {name}")
    sys.meta_path.insert(0, _NoTorch())
""")


def _frames(n: int, seed: int) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 120, (8, 16, 3)).astype(np.uint8), (SIZE[1] * 2, SIZE[0] * 2))
            for _ in range(n)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from pipa_edge.export.exporter import export

    d = tmp_path_factory.mktemp("lraspp")
    return export(_trained_like("lraspp-mbv3", d), quick_cfg(d)).files["onnx"]


def _collection(root: Path, imgs) -> None:
    import cv2

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.runtime.collect.store import Store

    with Store(root, SYNTH11) as st:
        for img in imgs:
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            st.add({"image": (".jpg", jpg.tobytes())}, {"source": "test://"})


def test_adapt_bn_cli_runs_without_torch_on_a_collection(model, tmp_path):
    _collection(tmp_path / "coll", _frames(10, 0))
    out = tmp_path / "new.onnx"
    code = BLOCK + textwrap.dedent(f"""
        from pipa_edge.cli.main import main
        rc = main(["adapt-bn", {str(model)!r}, "--frames", {str(tmp_path / 'coll')!r}, "--out", {str(out)!r},
                   "--batch-size", "4"])
        from pipa_edge.runtime.backends.ort_backend import OrtBackend
        import numpy as np
        y = OrtBackend({str(out)!r}).infer(np.zeros((1, {SIZE[0]}, {SIZE[1]}, 3), np.uint8))
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnxsim"))
        print("RESULT", rc, y.shape, bad)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")][-1]
    assert line.startswith("RESULT 0 (1,") and line.endswith("[]"), line
    rec = json.loads(out.with_name(out.name + ".json").read_text())["extra"]["bn_adaptations"][-1]
    assert rec["frames"]["kind"] == "collection" and rec["frames"]["count"] == 10 and rec["batches"] == 3


def test_video_frames_and_chained_adaptation(model, tmp_path):
    import cv2

    from pipa_edge.data.bn_frames import open_frames
    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx

    path = tmp_path / "clip.mp4"
    imgs = _frames(12, 1)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (imgs[0].shape[1], imgs[0].shape[0]))
    for img in imgs:
        vw.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    vw.release()
    fs = open_frames(path, limit=9)
    got = list(fs.frames(SIZE))
    assert fs.kind == "video" and fs.total == 12 and len(got) == fs.count == 9 and got[0].shape == (*SIZE, 3)
    first = adapt_bn_onnx(model, path, tmp_path / "a1.onnx", num_frames=9, batch_size=3, show_progress=False)
    # the adapted model can be adapted again (its companion follows it), on the same frames: ~no change
    again = adapt_bn_onnx(tmp_path / "a1.onnx", path, tmp_path / "a2.onnx", num_frames=9, batch_size=3,
                          show_progress=False)
    assert first["change"]["mean_abs_dmean_sd"] > 0.05
    assert again["change"]["mean_abs_dmean_sd"] < 1e-3 and again["labels_changed"] < 1e-3


def test_missing_companion_is_one_line(model, tmp_path):
    import shutil

    from pipa_edge.errors import ModelFileError
    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx

    lone = tmp_path / "lone.onnx"
    shutil.copyfile(model, lone)
    shutil.copyfile(model.with_name(model.name + ".json"), tmp_path / "lone.onnx.json")
    with pytest.raises(ModelFileError, match="no BN adaptation data"):
        adapt_bn_onnx(lone, tmp_path, tmp_path / "x.onnx", show_progress=False)


def test_sessions_closed_and_int8_engine_calibrates_on_the_video(model, tmp_path, monkeypatch):
    """The statistics graph and the two label-change sessions are closed; ``--engine --precision int8``
    from a video calibrates on that video's frames (TensorRT is not here: export_from_onnx is replaced
    by a recorder of the folder it would calibrate on)."""
    import cv2

    import pipa_edge.export.from_onnx as from_onnx
    from pipa_edge.export.bn_adapt import build_engine_for
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.bn_adapt import StatsGraph, adapt_bn_onnx

    path = tmp_path / "clip.mp4"
    imgs = _frames(12, 2)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (imgs[0].shape[1], imgs[0].shape[0]))
    for img in imgs:
        vw.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    vw.release()
    closed = []
    for cls in (StatsGraph, OrtBackend):
        real = cls.close
        monkeypatch.setattr(cls, "close", lambda self, real=real: closed.append(type(self).__name__) or real(self))
    seen = {}

    def fake_export(onnx_path, cfg):
        folder = Path(cfg.int8.calib)
        seen["calib"] = folder
        seen["frames"] = [cv2.imread(str(p)).shape for p in sorted(folder.glob("*.png"))]
        return type("R", (), {"deployed": tmp_path / "fake.engine"})()

    monkeypatch.setattr(from_onnx, "export_from_onnx", fake_export)
    rep = adapt_bn_onnx(model, path, tmp_path / "a.onnx", num_frames=12, batch_size=4, show_progress=False)
    assert sorted(closed) == ["OrtBackend", "OrtBackend", "StatsGraph"], closed
    assert rep["engine"] is None and rep["labels_changed"] is not None
    assert build_engine_for(Path(rep["out"]), "int8", path) == tmp_path / "fake.engine"
    assert seen["frames"] == [(*SIZE, 3)] * 12  # the video's 12 frames at the model size, not synthetic ones
    assert not seen["calib"].exists()  # the temporary folder is removed after the build
