"""pipa_edge.bench: honest latency numbers (``pipa-edge bench``; Python API :func:`pipa_edge.bench.api.bench`).

- :mod:`~pipa_edge.bench.stats` — :class:`LatencyStats` (exact percentiles, linear interpolation;
  sample std; CoV; no clipping), warm-up-until-stable detection.
- :mod:`~pipa_edge.bench.timer` — host timers and CUDA-event GPU timing (torch imported lazily).
- :mod:`~pipa_edge.bench.env` — environment captured with every result (CPU, threads, libraries,
  CUDA, Jetson power mode / clocks / tegrastats power).
- :mod:`~pipa_edge.bench.latency` — open a model (arch name, .pt, .onnx, .engine, .xml) as a
  :class:`~pipa_edge.runtime.backends.base.Backend` and time it, rows interleaved.
- :mod:`~pipa_edge.bench.stages` — per-stage host latency and frame age through the real runtime.
- :mod:`~pipa_edge.bench.train_step` — step time and peak memory of source-only / mean teacher / PiPa++.
- :mod:`~pipa_edge.bench.report` — table, JSON, CSV, histogram/CDF PNG, before/after comparison.

The project's suite (every ratio the docs quote) is ``bench/suite.py`` → ``docs/benchmarks.md``.
Nothing heavy is imported here.
"""
