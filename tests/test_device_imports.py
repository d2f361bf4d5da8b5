"""A device install has no torch: the device commands must not import it.

Each command runs in a subprocess whose import system refuses ``torch``, ``torchvision``,
``segmentation_models_pytorch``, ``onnxsim`` and ``onnxscript`` (the ``train`` extra) and records
every attempt; any attempt fails the test, even one the code would have survived. ``matplotlib``
(also only in the ``train`` extra) is made absent without counting as a failure: ``bench`` may
try it and must then skip its plot. The real device venv (Python 3.10, ``.[device]`` only) is
exercised by ``scripts/device_check.sh`` in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _export_util import make_ckpt, quick_cfg

HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "torchvision", "segmentation_models_pytorch", "onnxsim", "onnxscript")
ABSENT = ("matplotlib",)

# Runs before pipa_edge: a meta-path finder that refuses the train extra's modules.
BLOCKER = r"""
import os, runpy, sys, traceback
FORBIDDEN, ABSENT, LOG = {forbidden!r}, {absent!r}, os.environ["PIPA_BLOCK_LOG"]
class Blocker:
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root in FORBIDDEN:
            with open(LOG, "a") as f:
                f.write(f"import {{name}} from\n{{''.join(traceback.format_stack(limit=8)[:-1])}}\n")
        if root in FORBIDDEN or root in ABSENT:
            raise ModuleNotFoundError(f"No module named '{{name}}' (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["pipa-edge", *sys.argv[1:]]
runpy.run_module("pipa_edge.cli.main", run_name="__main__", alter_sys=True)
""".format(forbidden=FORBIDDEN, absent=ABSENT)


def run_blocked(tmp_path: Path, *argv: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / f"blocked-{len(list(tmp_path.glob('blocked-*')))}.log"
    env = {**os.environ, "PIPA_BLOCK_LOG": str(log), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "COLUMNS": "200"}
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-c", BLOCKER, *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc, log.read_text() if log.is_file() else ""


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """A tiny LR-ASPP exported the workstation way (torch available in this process)."""
    from pipa_edge.export.exporter import export

    d = tmp_path_factory.mktemp("device_onnx")
    res = export(make_ckpt(d, "lraspp-mbv3"), quick_cfg(d, name="x", deepstream={"enabled": False}))
    return res.files["onnx"]


@pytest.mark.parametrize("command", ["run", "bench", "collect", "export"])
def test_help_imports_no_torch(tmp_path, command):
    proc, attempts = run_blocked(tmp_path, command, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert command in proc.stdout
    assert attempts == "", f"`pipa-edge {command} --help` tried to import:\n{attempts}"


def test_run_bench_collect_without_torch(tmp_path, onnx_model):
    proc, attempts = run_blocked(tmp_path, "run", "test://", "none", "--model", str(onnx_model), "--max-frames", "5",
                                 "--stats-json", "stats.json", "--collect", "col",
                                 "--collect-set", "min_interval_s=0")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert attempts == "", f"`pipa-edge run` tried to import:\n{attempts}"
    assert json.loads((tmp_path / "stats.json").read_text())["frames"] == 5

    proc, attempts = run_blocked(tmp_path, "collect", "verify", "col")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert attempts == "", f"`pipa-edge collect` tried to import:\n{attempts}"
    assert ": ok" in proc.stdout

    proc, attempts = run_blocked(tmp_path, "bench", str(onnx_model), "--iters", "3", "--warmup", "1", "--rounds", "1",
                                 "--out", "bench")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert attempts == "", f"`pipa-edge bench` tried to import:\n{attempts}"
    data = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert data["results"][0]["backend"] == "onnxruntime" and len(data["results"][0]["samples_ms"]) == 3
    assert not (tmp_path / "bench" / "bench.png").exists()  # no matplotlib on a device: no plot, no failure


@pytest.mark.skipif(not HAS_RTX, reason="tensorrt-rtx is not installed (pip install tensorrt-rtx-cu13)")
def test_export_onnx_to_engine_without_torch(tmp_path, onnx_model):
    proc, attempts = run_blocked(tmp_path, "export", str(onnx_model), "--format", "engine", "--out", "eng")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert attempts == "", f"`pipa-edge export X.onnx` tried to import:\n{attempts}"
    engines = list((tmp_path / "eng").glob("x.*.fp32.64x128.engine"))
    assert len(engines) == 1 and (tmp_path / "eng" / f"{engines[0].name}.json").is_file()


@pytest.mark.parametrize("argv", [["train", "{repo}/train/synth_source_only.yaml", "--out", "t"],
                                  ["export", "{ckpt}"], ["eval", "{ckpt}", "--data", "synth:{repo}"],
                                  ["bench", "lraspp-mbv3"]])
def test_workstation_commands_say_how_to_install(tmp_path, onnx_model, argv):
    ckpt = onnx_model.parent / "lraspp-mbv3.pt"
    argv = [a.replace("{ckpt}", str(ckpt)).replace("{repo}", str(REPO)) for a in argv]
    proc, _ = run_blocked(tmp_path, *argv)
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert "needs the workstation install (torch is not installed here)" in err
    assert "pip install 'pipa-edge[train]'" in err


def test_run_of_a_checkpoint_names_the_train_extra(tmp_path, onnx_model):
    proc, _ = run_blocked(tmp_path, "run", "test://", "none", "--model", str(onnx_model.parent / "lraspp-mbv3.pt"),
                          "--max-frames", "2")
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and err, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert len(err) == 1 and "torch" in err[0] and "pip install 'pipa-edge[train]'" in err[0], err


def test_workstation_line_only_for_train_extra_modules():
    from pipa_edge.cli.workstation import workstation_line

    assert workstation_line(ModuleNotFoundError("x", name="torchvision.ops"), "eval").startswith(
        "pipa-edge eval: needs the workstation install (torchvision is not installed here)")
    assert workstation_line(ModuleNotFoundError("x", name="gi"), "run") is None
    assert workstation_line(ImportError("x", name="torch"), "run") is None  # a broken install, not a missing one
