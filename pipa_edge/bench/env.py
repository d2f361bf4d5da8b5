"""Environment captured with every benchmark result.

CPU model and threads, library versions (torch, onnxruntime, TensorRT, OpenVINO, GStreamer, ...),
CUDA device; on Jetson also the power mode (``nvpmodel -q``), whether clocks are locked
(``jetson_clocks --show``) and power rails from ``tegrastats``. Every external tool runs through
:func:`run_tool` (timeout, never raises); anything missing is ``None`` in the result.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

DIST_NAMES = {  # key in env["libs"] -> candidate distribution names
    "torch": ("torch",), "torchvision": ("torchvision",), "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "onnx": ("onnx",), "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-lean-cu13"),
    "tensorrt_rtx": ("tensorrt-rtx-cu13", "tensorrt_rtx"), "openvino": ("openvino",),
    "opencv": ("opencv-python-headless", "opencv-python"), "pipa_edge": ("pipa-edge",),
}


def run_tool(cmd: list[str], timeout: float = 5.0) -> str | None:
    """stdout+stderr of ``cmd``, or ``None`` when the tool is absent, fails or times out."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or "") + (out.stderr or "")
    return text.strip() if out.returncode == 0 and text.strip() else None


def _dist_version(names: tuple[str, ...]) -> str | None:
    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def gstreamer_version() -> str | None:
    """GStreamer version from ``gst-launch-1.0 --version`` (an external tool: importing ``gi`` in
    the bench process before torch's ONNX exporter has been seen to abort it)."""
    out = run_tool(["gst-launch-1.0", "--version"])
    m = re.search(r"GStreamer (\d+\.\d+(?:\.\d+)?)", out or "")
    return m.group(1) if m else None


def library_versions() -> dict:
    libs = {k: _dist_version(v) for k, v in DIST_NAMES.items()}
    libs["gstreamer"] = gstreamer_version()
    return libs


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip().lower()
            if key in ("model name", "hardware", "cpu model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_info() -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    torch_threads = None
    if "torch" in sys.modules:  # don't import torch just to ask
        torch_threads = sys.modules["torch"].get_num_threads()
    try:
        load = [round(v, 2) for v in os.getloadavg()]  # other processes competing for the cores
    except (AttributeError, OSError):
        load = None
    return {"model": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": affinity,
            "torch_threads": torch_threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg": load}


def cuda_info() -> dict:
    info = {"available": False, "device": None, "torch_cuda": None, "capability": None}
    if "torch" not in sys.modules:
        return info
    torch = sys.modules["torch"]
    info["torch_cuda"] = getattr(torch.version, "cuda", None)
    try:
        if torch.cuda.is_available():
            info.update(available=True, device=torch.cuda.get_device_name(0),
                        capability=".".join(str(v) for v in torch.cuda.get_device_capability(0)))
    except Exception:  # noqa: BLE001 - driver problems: report unavailable
        pass
    return info


# --------------------------------------------------------------------------------------- Jetson
def parse_nvpmodel(text: str | None) -> dict | None:
    """``NV Power Mode: MAXN\\n0`` → ``{"mode": "MAXN", "id": 0}``."""
    if not text:
        return None
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    ids = re.findall(r"^\s*(\d+)\s*$", text, flags=re.M)
    return {"mode": m.group(1) if m else None, "id": int(ids[-1]) if ids else None, "raw": text[:400]}


def parse_jetson_clocks(text: str | None) -> bool | None:
    """Clocks are locked when every ``MinFreq=… MaxFreq=… CurrentFreq=…`` line has min == max ==
    current (what ``jetson_clocks`` sets). ``None`` when nothing parses."""
    if not text:
        return None
    rows = re.findall(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)", text)
    if not rows:
        return None
    return all(a == b == c for a, b, c in rows)


_RAIL = re.compile(r"\b((?:VDDQ?|VIN|POM)_[A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?")
_TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def parse_tegrastats(line: str) -> dict | None:
    """Power rails of one ``tegrastats`` line in mW: ``{"rails": {...}, "total_mw": x, "total_from": ...}``.

    Total is ``VDD_IN``/``POM_5V_IN`` when present (board input), else the sum of the listed rails
    (AGX Orin lists separate inputs: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0).
    """
    rails = {name: int(cur) for name, cur, _avg in _RAIL.findall(line)}
    if not rails:
        return None
    for name in _TOTAL_RAILS:
        if name in rails:
            return {"rails": rails, "total_mw": float(rails[name]), "total_from": name}
    return {"rails": rails, "total_mw": float(sum(rails.values())), "total_from": "+".join(rails)}


class TegraStats:
    """Samples ``tegrastats`` while a benchmark runs: ``with TegraStats() as ts: ...; ts.mean_mw``.

    Inactive (``available`` False, ``mean_mw`` None) where tegrastats is absent.
    """

    def __init__(self, interval_ms: int = 100):
        self.interval_ms = int(interval_ms)
        self.available = shutil.which("tegrastats") is not None
        self.samples: list[float] = []
        self.total_from: str | None = None
        self._proc = None
        self._thread = None

    def __enter__(self) -> "TegraStats":
        if self.available:
            try:
                self._proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)],
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            except OSError:
                self.available = False
                return self
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parsed = parse_tegrastats(line)
            if parsed:
                self.samples.append(parsed["total_mw"])
                self.total_from = parsed["total_from"]

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            if self._thread is not None:
                self._thread.join(timeout=2)

    @property
    def mean_mw(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    def energy_mj_per_frame(self, ms_per_frame: float) -> float | None:
        """mean power (mW) × time per frame (s) = mJ per frame (board power, not model-only)."""
        return self.mean_mw * ms_per_frame / 1000.0 if self.mean_mw is not None else None


def jetson_info() -> dict:
    release = Path("/etc/nv_tegra_release")
    is_jetson = release.is_file()
    text = None
    if is_jetson:
        try:
            text = release.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            text = None
    nv = run_tool(["nvpmodel", "-q"])
    clocks = run_tool(["jetson_clocks", "--show"], timeout=10.0)
    return {"is_jetson": is_jetson, "l4t_release": text, "nvpmodel": parse_nvpmodel(nv),
            "clocks_locked": parse_jetson_clocks(clocks), "tegrastats": shutil.which("tegrastats") is not None}


def capture_env() -> dict:
    """Everything a reader needs to judge a number: machine, threads, libraries, device, Jetson state."""
    t0 = time.perf_counter()
    env = {
        "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "cpu": cpu_info(),
        "libs": library_versions(),
        "cuda": cuda_info(),
        "jetson": jetson_info(),
        "argv": list(sys.argv),
    }
    env["captured_in_s"] = round(time.perf_counter() - t0, 3)
    return env


def describe_machine(env: dict) -> str:
    """One line for tables/docs: ``Intel Xeon … (2 usable CPUs), torch 2.14.1, onnxruntime 1.20``."""
    cpu = env.get("cpu", {})
    libs = env.get("libs", {})
    parts = [f"{cpu.get('model') or 'unknown CPU'} ({cpu.get('usable_cpus')} usable CPUs)"]
    if env.get("cuda", {}).get("available"):
        parts.append(f"GPU {env['cuda']['device']}")
    jet = env.get("jetson", {})
    if jet.get("is_jetson"):
        mode = (jet.get("nvpmodel") or {}).get("mode")
        parts.append(f"Jetson {jet.get('l4t_release')}, power mode {mode}, clocks locked {jet.get('clocks_locked')}")
    parts += [f"{k} {v}" for k, v in libs.items() if v and k in ("torch", "onnxruntime", "tensorrt", "openvino", "gstreamer")]
    return ", ".join(parts)
