"""cuda-python helpers of the TensorRT backend (device buffers, stream, GPU info).

Runs only where a CUDA GPU and driver exist; elsewhere it checks the one-line "no GPU" error.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pipa_edge.errors import BackendUnavailable

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cuda") is None, reason="cuda-python is not installed")


def _gpu():
    from pipa_edge.runtime.backends.cuda_util import gpu_info

    try:
        return gpu_info()
    except BackendUnavailable as e:
        return e


def test_gpu_info_or_clear_error():
    g = _gpu()
    if isinstance(g, BackendUnavailable):
        assert "no CUDA GPU" in str(g) and "\n" not in str(g)
    else:
        assert g.sm.isdigit() and len(g.sm) >= 2 and g.name and g.memory_gb > 0


@pytest.mark.gpu
def test_device_buffer_roundtrip_on_stream():
    g = _gpu()
    if isinstance(g, BackendUnavailable):
        pytest.skip(f"needs a CUDA GPU: {g}")
    from pipa_edge.runtime.backends.cuda_util import DeviceBuffer, Stream

    x = np.random.default_rng(0).standard_normal((2, 3, 64, 128)).astype(np.float32)
    u8 = np.random.default_rng(1).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    s = Stream()
    a, b = DeviceBuffer(x.nbytes), DeviceBuffer(u8.nbytes)
    a.upload(x, s)
    b.upload(u8, s)
    out_x, out_u8 = a.download(np.empty_like(x), s), b.download(np.empty_like(u8), s)
    s.sync()
    assert np.array_equal(out_x, x) and np.array_equal(out_u8, u8)
    b.upload(u8)  # synchronous path
    assert np.array_equal(b.download(np.empty_like(u8)), u8)
    with pytest.raises(ValueError, match="upload of"):
        b.upload(x)
    a.free(), b.free(), s.close()
    a.free()  # idempotent
