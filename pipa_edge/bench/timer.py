"""Timers: host wall-clock (``perf_counter_ns``) and CUDA-event GPU time.

Host latency is what a caller waits for: the clock stops only after the result is back on the
host (every :class:`~pipa_edge.runtime.backends.base.Backend` returns NumPy, so its ``infer``
has already synchronised its stream); :func:`cuda_sync` is called anyway before stopping the
clock when a GPU is in use. GPU compute time comes from a pair of CUDA events recorded on the
current torch stream around the call (``elapsed_time`` after ``synchronize``). torch.cuda is
imported lazily; without a CUDA GPU :func:`cuda_available` is False and GPU time is ``None``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator


def now_ns() -> int:
    return time.perf_counter_ns()


def ms_since(t0_ns: int) -> float:
    return (time.perf_counter_ns() - t0_ns) / 1e6


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device (never raises)."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - no torch → no CUDA timing
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - broken driver
        return False


def cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


class HostTimer:
    """``with t: work()`` → ``t.ms``; optional ``sync`` callable runs before the clock stops."""

    def __init__(self, sync: Callable[[], None] | None = None):
        self.sync = sync
        self.ms = 0.0
        self._t0 = 0

    def __enter__(self) -> "HostTimer":
        if self.sync is not None:
            self.sync()  # do not charge earlier queued work to this call
        self._t0 = now_ns()
        return self

    def __exit__(self, *exc) -> None:
        if self.sync is not None:
            self.sync()
        self.ms = ms_since(self._t0)


class CudaEventTimer:
    """GPU time of the work queued on the current torch CUDA stream between enter and exit."""

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("CudaEventTimer needs a CUDA GPU")
        self._torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self.ms: float | None = None

    def __enter__(self) -> "CudaEventTimer":
        self._start.record()
        return self

    def __exit__(self, *exc) -> None:
        self._end.record()
        self._end.synchronize()
        self.ms = float(self._start.elapsed_time(self._end))


def time_call(fn: Callable[[], object], use_cuda: bool = False, events: bool = True) -> tuple[float, float | None]:
    """Run ``fn`` once: ``(host_ms, gpu_ms)``; ``gpu_ms`` is None unless ``use_cuda`` and ``events``.

    With ``use_cuda`` the host clock starts after a device sync and stops after the device has
    synchronised, so host time ≥ GPU time always holds. ``events`` records CUDA events on the
    current *torch* stream: meaningful for work torch queues (the torch backend), not for a
    library with its own streams (TensorRT, ORT-CUDA), where only host time is reported.
    """
    if not use_cuda:
        t0 = now_ns()
        fn()
        return ms_since(t0), None
    cuda_sync()
    if not events:
        t0 = now_ns()
        fn()
        cuda_sync()
        return ms_since(t0), None
    ev = CudaEventTimer()
    t0 = now_ns()
    with ev:
        fn()
    cuda_sync()
    return ms_since(t0), ev.ms


@contextmanager
def stopwatch() -> Iterator[dict]:
    """``with stopwatch() as sw: ...`` then ``sw["ms"]``."""
    box = {"ms": 0.0}
    t0 = now_ns()
    try:
        yield box
    finally:
        box["ms"] = ms_since(t0)
