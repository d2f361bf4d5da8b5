"""Runtime: ``pipa-edge run SOURCE OUTPUT`` — GStreamer video segmentation with temporal smoothing.

``run_stream(source, output, model, **opts) -> RunSummary`` is the Python API (lazy import:
importing this package does not load GStreamer or a backend).
"""

from __future__ import annotations

__all__ = ["run_stream", "RunSummary", "RunOptions", "parse_source", "parse_output", "TemporalFilter"]


def __getattr__(name: str):
    if name in ("run_stream", "RunOptions"):
        from pipa_edge.runtime import pipeline

        return getattr(pipeline, name)
    if name == "RunSummary":
        from pipa_edge.runtime.stats import RunSummary

        return RunSummary
    if name in ("parse_source", "parse_output"):
        from pipa_edge.runtime import uri

        return getattr(uri, name)
    if name == "TemporalFilter":
        from pipa_edge.runtime.temporal import TemporalFilter

        return TemporalFilter
    raise AttributeError(name)
