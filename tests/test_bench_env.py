"""Environment capture, Jetson tool parsing and timers of pipa_edge.bench."""

from __future__ import annotations

import pytest

from pipa_edge.bench import env as envmod
from pipa_edge.bench.timer import HostTimer, cuda_available, time_call

ORIN_NANO = ("11-24-2026 13:45:01 RAM 2398/7620MB (lfb 6x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@729,1%@729] "
             "EMC_FREQ 0% GR3D_FREQ 0% cpu@47.3C VDD_IN 4815mW/4815mW VDD_CPU_GPU_CV 715mW/715mW VDD_SOC 1430mW/1430mW")
AGX_ORIN = ("RAM 2398/30536MB CPU [1%@729] VDD_GPU_SOC 3183mW/3183mW VDD_CPU_CV 795mW/795mW "
            "VIN_SYS_5V0 4446mW/4446mW VDDQ_VDD2_1V8AO 706mW/706mW")
NANO = "RAM 1900/3964MB CPU [5%@102] POM_5V_IN 2718/2718 POM_5V_GPU 0/0 POM_5V_CPU 442/442"


def test_capture_env_has_expected_keys():
    e = envmod.capture_env()
    assert {"timestamp_utc", "python", "platform", "cpu", "libs", "cuda", "jetson"} <= set(e)
    assert {"model", "logical_cpus", "usable_cpus", "omp_num_threads"} <= set(e["cpu"])
    assert {"torch", "onnxruntime", "tensorrt", "gstreamer", "openvino"} <= set(e["libs"])
    assert e["libs"]["torch"].startswith("2.")
    assert {"is_jetson", "nvpmodel", "clocks_locked", "tegrastats"} <= set(e["jetson"])
    assert envmod.describe_machine(e)


def test_missing_jetson_tools_give_null(monkeypatch):
    monkeypatch.setattr(envmod.shutil, "which", lambda name: None)
    j = envmod.jetson_info()
    assert j["nvpmodel"] is None and j["clocks_locked"] is None and j["tegrastats"] is False
    ts = envmod.TegraStats()
    with ts:
        pass
    assert ts.available is False and ts.mean_mw is None and ts.energy_mj_per_frame(10.0) is None


def test_run_tool_absent_failing_and_timeout():
    assert envmod.run_tool(["pipa-edge-no-such-tool-xyz"]) is None
    assert envmod.run_tool(["false"]) is None
    assert envmod.run_tool(["sleep", "5"], timeout=0.2) is None
    assert envmod.run_tool(["echo", "hi"]) == "hi"


def test_parse_nvpmodel_and_jetson_clocks():
    assert envmod.parse_nvpmodel("NV Power Mode: MAXN\n0")["mode"] == "MAXN"
    assert envmod.parse_nvpmodel("NVPM WARN: ...\nNV Power Mode: 15W\n2\n")["id"] == 2
    assert envmod.parse_nvpmodel(None) is None
    locked = ("cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: C1=0\n"
              "GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000")
    free = ("cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=1036800 IdleStates: C1=1\n"
            "GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000")
    assert envmod.parse_jetson_clocks(locked) is True
    assert envmod.parse_jetson_clocks(free) is False
    assert envmod.parse_jetson_clocks("garbage") is None


def test_parse_tegrastats_power_rails():
    a = envmod.parse_tegrastats(ORIN_NANO)
    assert a["total_mw"] == 4815 and a["total_from"] == "VDD_IN"
    b = envmod.parse_tegrastats(AGX_ORIN)  # no board-input rail: sum of the listed rails
    assert b["total_mw"] == 3183 + 795 + 4446 + 706
    c = envmod.parse_tegrastats(NANO)  # older L4T: no mW unit
    assert c["total_mw"] == 2718 and c["total_from"] == "POM_5V_IN"
    assert envmod.parse_tegrastats("RAM 2398/30536MB CPU [1%@729]") is None  # RAM is not a rail


def test_energy_per_frame_from_power():
    ts = envmod.TegraStats()
    ts.samples = [5000.0, 7000.0]  # mW
    assert ts.energy_mj_per_frame(20.0) == pytest.approx(120.0)  # 6 W * 20 ms = 120 mJ


def test_host_timer_measures_sleep():
    import time

    with HostTimer() as t:
        time.sleep(0.02)
    assert t.ms >= 19.0
    host, gpu = time_call(lambda: time.sleep(0.01))
    assert host >= 9.0 and gpu is None


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU: CUDA-event timing not exercised here")
def test_cuda_event_timing():
    import torch

    x = torch.randn(2048, 2048, device="cuda")
    host, gpu = time_call(lambda: x @ x, use_cuda=True)
    assert gpu is not None and 0 < gpu <= host
