"""``pipa-edge export MODEL.onnx --format engine|openvino``: the device-side build from ONNX + sidecar.

TensorRT here is TensorRT-RTX (``tensorrt-rtx-cu13``), which parses and builds on a CPU-only
machine; full TensorRT (Jetson, TensorRT 8.6/10) and running the engine need a GPU and are not
exercised (docs say so). OpenVINO tests skip when the ``openvino`` extra is absent.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import cv2
import numpy as np
import pytest

from _export_util import SIZE, make_ckpt, quick_cfg
from pipa_edge.cli.main import main
from pipa_edge.errors import ConfigError, DataError, ModelFileError
from pipa_edge.export.config import ExportConfig
from pipa_edge.export.frames import load_frames
from pipa_edge.export.from_onnx import export_from_onnx, read_onnx_meta
from pipa_edge.runtime.backends.sidecar import file_sha256, read_sidecar, sidecar_path

HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
HAS_OV = importlib.util.find_spec("openvino") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="tensorrt-rtx is not installed (pip install tensorrt-rtx-cu13)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The workstation's output: x.onnx + x.onnx.json (LR-ASPP, 64×128), and a stateful graph."""
    from pipa_edge.export.exporter import export

    d = tmp_path_factory.mktemp("from_onnx")
    res = export(make_ckpt(d, "lraspp-mbv3"), quick_cfg(d, name="x", deepstream={"enabled": False},
                                                        temporal={"enabled": True}))
    return res.files["onnx"], res.files["onnx_stateful"]


def _copy_pair(src, folder):
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    shutil.copyfile(src, dst)
    shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    return dst


def _frames_dir(folder, n=6, collection=False):
    img_dir = folder / "images" if collection else folder
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(img_dir / f"f{i:03d}.jpg"), rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))
    if collection:  # a `pipa-edge run --collect` folder also has these
        (folder / "labels").mkdir(exist_ok=True)
        (folder / "manifest.jsonl").write_text("")
    return folder


def test_sidecar_hash_mismatch_is_one_line(tmp_path, exported, capsys):
    onnx = _copy_pair(exported[0], tmp_path)
    side = json.loads(sidecar_path(onnx).read_text())
    side["extra"]["file_sha256"] = "0" * 64
    sidecar_path(onnx).write_text(json.dumps(side))
    with pytest.raises(ModelFileError, match="does not match its sidecar x.onnx.json .*copy the .onnx and its"):
        read_onnx_meta(onnx)
    assert main(["export", str(onnx), "--format", "engine"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not match its sidecar" in err and "\n" not in err
    assert not list(tmp_path.glob("*.engine"))


def test_meta_comes_from_the_sidecar_or_the_embedded_copy(tmp_path, exported):
    onnx = _copy_pair(exported[0], tmp_path)
    meta = read_onnx_meta(onnx)
    assert meta.input_size == SIZE and meta.classes.name == "synth11"
    assert meta.extra["file_sha256"] == file_sha256(onnx)
    sidecar_path(onnx).unlink()
    embedded = read_onnx_meta(onnx)  # the copy in metadata_props: same model facts, no hash to check
    assert embedded.input_size == meta.input_size and embedded.output == meta.output
    assert embedded.classes.names == meta.classes.names and embedded.mean == meta.mean
    bare = tmp_path / "bare.onnx"
    import onnx as onnx_lib

    proto = onnx_lib.load(str(onnx))
    del proto.metadata_props[:]
    onnx_lib.save(proto, str(bare))
    with pytest.raises(ModelFileError, match="bare.onnx: no sidecar bare.onnx.json and no pipa-edge metadata"):
        read_onnx_meta(bare)


@pytest.mark.parametrize("argv_tail,needle", [
    (["--format", "onnx"], "already ONNX: pass --format engine"),
    (["--format", "engine", "--imgsz", "128", "256"], "--imgsz shape the graph at checkpoint export"),
    (["--format", "engine", "--no-simplify", "--stateful"], "--no-simplify, --stateful shape the graph"),
    (["--format", "engine", "--precision", "int8", "--calib", "nowhere"], "nowhere: frames folder not found"),
])
def test_onnx_route_refuses_in_one_line(tmp_path, exported, capsys, argv_tail, needle):
    onnx = _copy_pair(exported[0], tmp_path)
    assert main(["export", str(onnx), *[a.replace("nowhere", str(tmp_path / "nowhere")) for a in argv_tail]]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], errors
    assert not list(tmp_path.glob("*.engine"))


def test_stateful_graph_and_engine_files_are_refused(tmp_path, exported, capsys):
    with pytest.raises(ConfigError, match="stateful graph .* runs on onnxruntime only"):
        export_from_onnx(exported[1], ExportConfig(format="engine", out_dir=str(tmp_path)))
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    assert main(["export", str(eng)]) == 2
    assert "expects a .pt checkpoint or an exported .onnx" in capsys.readouterr().err


def test_device_frames_from_folder_and_collection(tmp_path):
    fs = load_frames(_frames_dir(tmp_path / "flat", 5), 3, SIZE)
    assert fs.frames.shape == (3, *SIZE, 3) and fs.frames.dtype == np.uint8 and "3 frames" in fs.source
    assert fs.labels is None
    fs = load_frames(_frames_dir(tmp_path / "col", 4, collection=True), 10, SIZE)
    assert fs.frames.shape == (4, *SIZE, 3)
    (tmp_path / "col" / "images" / ".f999.jpg.tmp.jpg").write_bytes(b"a write in progress")
    assert load_frames(tmp_path / "col", 10, SIZE).frames.shape == (4, *SIZE, 3)  # hidden files are not frames
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images found"):
        load_frames(tmp_path / "empty", 3, SIZE)
    (tmp_path / "flat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_frames(tmp_path / "flat", 10, SIZE)


@needs_rtx
@pytest.mark.parametrize("prec", ["fp32", "fp16"])
def test_engine_from_onnx_names_caches_and_writes_sidecar(tmp_path, exported, prec):
    onnx = _copy_pair(exported[0], tmp_path / "dev")
    cfg = ExportConfig(format="engine", precision=prec, out_dir=str(tmp_path / "out"),
                       tensorrt={"timing_cache": str(tmp_path / "tc")})
    res = export_from_onnx(onnx, cfg)
    eng = res.files["engine"]
    # per ONNX sha / TensorRT flavour+version / device (RTX: any RTX GPU) / precision / size
    assert re.fullmatch(rf"x\.[0-9a-f]{{12}}\.trtrtx[0-9.]+\.smrtx\.{prec}\.{SIZE[0]}x{SIZE[1]}\.engine", eng.name)
    side = read_sidecar(eng)
    assert side.precision == prec and side.input_size == SIZE and side.classes.name == "synth11"
    assert side.extra["tensorrt_flavour"] == "tensorrt_rtx" and side.extra["engine_sha256"] == file_sha256(eng)
    graph = res.files.get("onnx_fp16", onnx)
    assert side.extra["onnx_sha256"] == file_sha256(graph)
    if prec == "fp16":  # strongly typed: the precision comes from an FP16 graph with its own sidecar
        assert read_sidecar(graph).precision == "fp16" and read_sidecar(graph).extra["source_onnx"] == "x.onnx"
    report = json.loads(res.report.read_text())
    assert report["files"]["engine"] == str(eng) and report["precision"] == prec
    mtime = eng.stat().st_mtime_ns
    again = export_from_onnx(onnx, cfg)
    assert again.files["engine"] == eng and eng.stat().st_mtime_ns == mtime  # cached: not rebuilt


@needs_rtx
def test_int8_engine_calibrated_on_a_collection(tmp_path, exported):
    onnx = _copy_pair(exported[0], tmp_path / "dev")
    col = _frames_dir(tmp_path / "collect", 6, collection=True)
    assert main(["export", str(onnx), "--format", "engine", "--precision", "int8", "--calib", str(col),
                 "--calib-n", "4", "--out", str(tmp_path / "out")]) == 0
    q = tmp_path / "out" / "x.int8.onnx"
    calib = read_sidecar(q).extra["calibration"]
    assert calib["frames"] == 4 and str(col) in calib["source"]
    engines = list((tmp_path / "out").glob("x.*.smrtx.int8.64x128.engine"))
    assert len(engines) == 1 and read_sidecar(engines[0]).extra["onnx_sha256"] == file_sha256(q)


@pytest.mark.skipif(not HAS_OV, reason="openvino is not installed (pip install 'pipa-edge[openvino]')")
def test_openvino_from_onnx_with_parity(tmp_path, exported):
    onnx = _copy_pair(exported[0], tmp_path / "dev")
    res = export_from_onnx(onnx, ExportConfig(format="openvino", out_dir=str(tmp_path / "out")))
    assert res.files["openvino"].suffix == ".xml" and res.parity["OpenVINO"]["agreement"] >= 0.999
