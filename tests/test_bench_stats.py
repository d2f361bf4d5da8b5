"""Statistics of pipa_edge.bench on known inputs (no timings asserted)."""

from __future__ import annotations

import math

import pytest

from pipa_edge.bench.stats import HIGH_COV, LatencyStats, WarmupMonitor, ratio, stable_index


def _sample_std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def test_percentiles_linear_interpolation_on_1_to_100():
    xs = list(range(1, 101))
    s = LatencyStats.from_samples(reversed(xs))  # order must not matter
    assert s.n == 100
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p99 == pytest.approx(99.01)
    assert (s.min, s.max) == (1.0, 100.0)
    assert s.mean == pytest.approx(50.5)
    assert s.std == pytest.approx(_sample_std(xs))
    assert s.cov == pytest.approx(_sample_std(xs) / 50.5)
    assert s.fps == pytest.approx(1000.0 / 50.5)
    assert s.high_cov  # ~57 % spread


def test_small_series_by_hand():
    s = LatencyStats.from_samples([4.0, 1.0, 3.0, 2.0])
    # sorted 1,2,3,4: p50 at rank 1.5 -> 2.5; p90 at rank 2.7 -> 3.7; p99 at rank 2.97 -> 3.97
    assert (s.p50, s.p90, s.p99) == pytest.approx((2.5, 3.7, 3.97))
    assert s.std == pytest.approx(_sample_std([1, 2, 3, 4]))


def test_constant_series_has_zero_cov():
    s = LatencyStats.from_samples([7.5] * 20)
    assert s.cov == 0.0 and s.std == 0.0
    assert s.p50 == s.p99 == s.min == s.max == 7.5
    assert not s.high_cov


def test_single_sample():
    s = LatencyStats.from_samples([3.0])
    assert s.n == 1 and s.std == 0.0 and s.p99 == 3.0


def test_outliers_are_kept_not_clipped():
    xs = [10.0] * 99 + [1000.0]
    s = LatencyStats.from_samples(xs)
    assert s.max == 1000.0
    assert s.mean == pytest.approx((990.0 + 1000.0) / 100)
    assert s.p99 == pytest.approx(10.0 + 0.01 * 990.0)  # rank 98.01 interpolates toward the outlier
    assert s.p50 == 10.0
    assert s.cov > HIGH_COV


def test_batch_scales_fps():
    s = LatencyStats.from_samples([20.0, 20.0], batch=4)
    assert s.fps == pytest.approx(200.0)
    assert s.fps_mean == pytest.approx(200.0)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [float("nan")], [float("inf")]])
def test_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        LatencyStats.from_samples(bad)


def test_stable_index_on_decaying_series():
    series = [50, 40, 30, 20, 15] + [10] * 20
    # medians of windows starting at 3 ([20,15,10,10,10] -> 10) and 8 (10) agree first
    assert stable_index(series, window=5, rel_tol=0.05) == 8


def test_stable_index_tolerates_noise_but_not_trends():
    noisy = [100, 60] + [10.0 + (0.3 if i % 2 else -0.3) for i in range(20)]
    idx = stable_index(noisy, window=5, rel_tol=0.05)
    assert idx is not None and 5 <= idx <= 7
    doubling = [2.0 ** i for i in range(30)]
    assert stable_index(doubling, window=5, rel_tol=0.05) is None
    assert stable_index([1.0, 1.0], window=5) is None  # too short


def test_warmup_by_count():
    m = WarmupMonitor(count=3)
    assert not m.done
    for v in (5.0, 5.0, 5.0):
        m.add(v)
    assert m.done and m.stable is None
    assert m.to_dict()["iters"] == 3
    assert WarmupMonitor(count=0).done


def test_warmup_until_stable():
    m = WarmupMonitor(count=None, max_s=100.0, window=5, rel_tol=0.05)
    fed = 0
    for v in [50, 40, 30, 20, 15] + [10] * 30:
        if m.done:
            break
        m.add(v)
        fed += 1
    assert m.stable is True
    assert fed == 13  # stops once the last two 5-sample windows agree: [15,10,10,10,10] vs [10]*5
    assert m.to_dict()["stable"] is True


def test_warmup_gives_up_after_max_seconds():
    m = WarmupMonitor(count=None, max_s=1.0, window=5)
    v = 1.0
    while not m.done:
        m.add(v)
        v *= 2  # never stable; time budget ends it
    assert m.stable is False
    assert m.elapsed_s >= 1.0


def test_ratio_is_none_when_undefined():
    assert ratio(10.0, 5.0) == 2.0
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None
