"""Latency statistics: exact percentiles, spread, and warm-up-until-stable detection.

Method (stated so results can be checked by hand):

- Percentiles are exact over *all* timed samples, with **linear interpolation** between the two
  nearest ranks (NumPy's default ``method="linear"``, Hyndman & Fan type 7): for sorted samples
  ``x[0..n-1]`` the q-th percentile is ``x[k] + (x[k+1] - x[k]) * f`` with ``k + f = (n - 1) q / 100``.
  For 1..100: p50 = 50.5, p90 = 90.1, p99 = 99.01.
- ``std`` is the **sample** standard deviation (``ddof=1``; 0 for a single sample) and the
  coefficient of variation is ``std / mean``.
- Nothing is clipped: min, max, mean and std include every outlier. A high CoV is reported
  (:data:`HIGH_COV`) instead of hidden.
- FPS is ``batch * 1000 / p50_ms`` (throughput at the median latency); ``fps_mean`` uses the mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

PERCENTILES = (50, 90, 99)
PERCENTILE_METHOD = "linear interpolation between closest ranks (numpy.percentile default, H&F type 7)"
HIGH_COV = 0.10  # warn when std/mean exceeds 10 %


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in milliseconds (all samples, outliers kept)."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    cov: float
    fps: float
    fps_mean: float
    batch: int = 1

    @classmethod
    def from_samples(cls, samples_ms: Iterable[float], batch: int = 1) -> "LatencyStats":
        x = np.asarray(list(samples_ms), dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError("LatencyStats needs at least one sample")
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError("latency samples must be finite and non-negative")
        p50, p90, p99 = (float(v) for v in np.percentile(x, PERCENTILES, method="linear"))
        mean = float(x.mean())
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        cov = std / mean if mean > 0 else 0.0
        fps = batch * 1000.0 / p50 if p50 > 0 else math.inf
        fps_mean = batch * 1000.0 / mean if mean > 0 else math.inf
        return cls(n=int(x.size), min=float(x.min()), p50=p50, p90=p90, p99=p99, max=float(x.max()), mean=mean,
                   std=std, cov=cov, fps=fps, fps_mean=fps_mean, batch=int(batch))

    @property
    def high_cov(self) -> bool:
        return self.cov > HIGH_COV

    def to_dict(self) -> dict:
        """Plain dict; an infinite FPS (zero latency) becomes ``None`` so the JSON stays valid."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        return (f"p50 {self.p50:.2f} ms, p90 {self.p90:.2f}, p99 {self.p99:.2f}, min {self.min:.2f}, "
                f"max {self.max:.2f}, mean {self.mean:.2f} ± {self.std:.2f} (CoV {self.cov * 100:.1f} %), "
                f"{self.fps:.1f} FPS, n={self.n}")


def stable_index(samples: Sequence[float], window: int = 5, rel_tol: float = 0.05) -> int | None:
    """First index from which the series is warm: the medians of two consecutive windows of
    ``window`` samples differ by at most ``rel_tol`` (relative to the later one).

    Returns the index just after the first window of that stable pair, i.e. the number of samples
    to discard as warm-up, or ``None`` when the series never settles.
    """
    x = np.asarray(samples, dtype=np.float64)
    if window < 1:
        raise ValueError("window must be >= 1")
    for i in range(0, x.size - 2 * window + 1):
        a = float(np.median(x[i:i + window]))
        b = float(np.median(x[i + window:i + 2 * window]))
        if b > 0 and abs(a - b) / b <= rel_tol:
            return i + window
    return None


class WarmupMonitor:
    """Online warm-up: ``add(ms)`` per warm-up iteration, ``done`` once the policy is met.

    - ``count=N``: exactly N iterations.
    - otherwise *until stable*: at least ``min_iters`` iterations and :func:`stable_index` finds a
      stable pair of windows in the series so far — or ``max_s`` seconds of warm-up have elapsed
      (then ``stable`` stays False and the bench warns). Stable means the medians of the last two
      windows of ``window`` samples agree within ``rel_tol``.
    """

    def __init__(self, count: int | None = None, max_s: float = 30.0, window: int = 5, rel_tol: float = 0.05,
                 min_iters: int = 3):
        if count is not None and count < 0:
            raise ValueError("warm-up count must be >= 0")
        self.count, self.max_s, self.window, self.rel_tol = count, float(max_s), int(window), float(rel_tol)
        self.min_iters = int(min_iters)
        self.samples: list[float] = []
        self.elapsed_s = 0.0
        self.stable: bool | None = None if count is not None else False

    @property
    def mode(self) -> str:
        return f"count={self.count}" if self.count is not None else (
            f"until-stable(window={self.window}, tol={self.rel_tol:.0%}, max {self.max_s:g} s)")

    def add(self, ms: float) -> None:
        self.samples.append(float(ms))
        self.elapsed_s += ms / 1000.0

    @property
    def done(self) -> bool:
        if self.count is not None:
            return len(self.samples) >= self.count
        if len(self.samples) >= max(self.min_iters, 2 * self.window):
            if stable_index(self.samples[-2 * self.window:], self.window, self.rel_tol) is not None:
                self.stable = True
                return True
        return self.elapsed_s >= self.max_s

    def to_dict(self) -> dict:
        return {"mode": self.mode, "iters": len(self.samples), "seconds": round(self.elapsed_s, 4),
                "stable": self.stable}


def ratio(a: float, b: float) -> float | None:
    """``a / b`` or ``None`` when undefined (so JSON never holds inf/NaN)."""
    if b is None or a is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b
