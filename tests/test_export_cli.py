"""`pipa-edge export` CLI: profiles validate, flags override profiles, one-line errors with exit 2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from _export_util import make_ckpt
from pipa_edge.cli.main import main
from pipa_edge.errors import ConfigError
from pipa_edge.export.config import ExportConfig, load_export_config

PROFILES = sorted((Path(__file__).resolve().parents[1] / "export").glob("*.yaml"))


def test_profiles_exist_and_validate():
    names = {p.stem for p in PROFILES}
    assert {"jetson-orin", "jetson-orin-nano", "x86-cpu", "dgpu"} <= names
    for p in PROFILES:
        cfg = load_export_config(p)
        assert isinstance(cfg, ExportConfig) and cfg.device == p.stem


def test_flags_override_profile(tmp_path):
    prof = next(p for p in PROFILES if p.stem == "jetson-orin")
    cfg = load_export_config(prof, {"format": "onnx", "imgsz": (256, 512), "int8.n": 7, "precision": None},
                             ("tensorrt.workspace_gb=4",))
    assert cfg.format == "onnx" and cfg.imgsz == (256, 512) and cfg.int8.n == 7
    assert cfg.precision == "fp16"  # None = flag not given: profile value kept
    assert cfg.tensorrt.workspace_gb == 4


def test_bad_profile_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: onnx\ntensorrt:\n  worksapce_gb: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'tensorrt.worksapce_gb': unknown key"):
        load_export_config(bad)
    bad.write_text("imgsz: [16, 1000]\n")
    with pytest.raises(ConfigError, match="at least 32"):
        load_export_config(bad)


def test_cli_onnx_end_to_end(tmp_path, capsys):
    ck = make_ckpt(tmp_path, "lraspp-mbv3")
    out = tmp_path / "out"
    rc = main(["export", str(ck), "--imgsz", "64", "128", "--out", str(out), "--bench-runs", "1",
               "--set", "parity.n=2", "--output", "probs"])
    assert rc == 0
    assert (out / "lraspp-mbv3.onnx").is_file() and (out / "lraspp-mbv3.onnx.json").is_file()
    assert (out / "lraspp-mbv3.nvinfer.txt").is_file() and (out / "lraspp-mbv3.export.json").is_file()


@pytest.mark.parametrize("argv_tail,needle", [
    (["--profile", "nope.yaml"], "nope.yaml: config file not found"),
    (["--set", "precision=int4"], "precision"),
])
def test_cli_config_errors_exit_2(tmp_path, capsys, argv_tail, needle):
    ck = make_ckpt(tmp_path, "lraspp-mbv3")
    assert main(["export", str(ck), *argv_tail]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_cli_corrupt_checkpoint_exit_2(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x80\x04garbage")
    assert main(["export", str(bad), "--imgsz", "64", "128"]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and "Traceback" not in err


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed ([openvino] extra)")
def test_openvino_export_and_backend(tmp_path):
    from _export_util import quick_cfg

    from pipa_edge.export.exporter import export
    from pipa_edge.runtime.backends import load_backend

    ck = make_ckpt(tmp_path, "lraspp-mbv3")
    res = export(ck, quick_cfg(tmp_path, format="openvino", input_format="uint8_nhwc", output="labels"))
    xml = res.files["openvino"]
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    assert res.parity["OpenVINO"].passed and res.parity["OpenVINO"].agreement >= 0.999
    with load_backend(xml) as b:
        assert b.name == "openvino" and b.meta.output == "labels"
    xml.with_suffix(".bin").write_bytes(b"\x00" * 10)
    from pipa_edge.errors import ModelFileError

    with pytest.raises(ModelFileError, match="does not match its sidecar"):
        load_backend(xml)
