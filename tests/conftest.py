"""Shared fixtures: where the real data lives (../shared/data), skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# matplotlib's FreeType module segfaults when first imported after a GStreamer pipeline ran in the
# process (seen with Debian 12's GStreamer 1.22): load it once, up front, before any runtime test.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401


def _preload_native_libs() -> None:
    """Load onnxsim and OpenVINO's CPU plugin before any test starts a GStreamer pipeline: loaded
    afterwards (same process) they were seen to abort (onnxsim) or crash in compile_model (OpenVINO)."""
    try:
        import onnxsim  # noqa: F401
    except ImportError:
        pass
    try:
        import openvino as ov

        ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    except Exception:  # noqa: BLE001 - not installed, or no CPU plugin: the tests that need it skip
        pass


_preload_native_libs()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIPA_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(sub: str) -> Path:
    p = SHARED_DATA / sub
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (it lives in ../shared/data beside the checkout)")
    return p


@pytest.fixture
def camvid_root() -> Path:
    return _need("camvid")


@pytest.fixture
def cityscapes_sample_root() -> Path:
    return _need("cityscapes_sample")


@pytest.fixture
def dashcam_video() -> Path:
    return _need("video/solidWhiteRight.mp4")


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    """Tests run on 2 shared cores: keep torch to one intra-op thread, no progress bars."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("PIPA_NO_PROGRESS", "1")
