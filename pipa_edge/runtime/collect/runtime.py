"""Glue between ``pipa-edge run`` and the collector: ``open_collector(DIR, CONFIG, backend, source)``.

The runtime calls, in its inference thread, right after ``backend.infer``::

    collector.offer(frame.image, out[0], t=frame.t_capture, kind=backend.meta.output)

(``out`` is the backend's raw output: probabilities or logits; the softmax, the selection and the
writes run on the collector's worker thread). ``t`` is the capture time (``time.monotonic()``), so
``min_interval_s`` is wall-clock time between saves.
"""

from __future__ import annotations

from pathlib import Path

from pipa_edge.errors import ConfigError
from pipa_edge.fileio import file_sha256
from pipa_edge.runtime.collect.config import load_collect_config


def model_info(backend) -> dict:
    """What identifies the running model in each manifest entry: file, sha256, backend, precision."""
    meta = backend.meta
    path = getattr(backend, "path", None) or (meta.extra or {}).get("source")
    info = {"backend": getattr(backend, "name", "?"), "precision": meta.precision,
            "input_size": list(meta.input_size), "arch": (meta.extra or {}).get("arch")}
    if path and Path(path).is_file():
        info["path"] = str(path)
        info["sha256"] = file_sha256(path)
    for key in ("onnx_sha256", "engine_sha256", "tensorrt_version", "gpu"):
        if (meta.extra or {}).get(key) is not None:
            info[key] = meta.extra[key]
    return info


def open_collector(out_dir: str | Path, config: str | Path | None, backend, source: str = "",
                   overrides=()):
    """A started :class:`~pipa_edge.runtime.collect.collector.Collector` for ``backend``'s classes."""
    from pipa_edge.log import stage
    from pipa_edge.runtime.collect.collector import Collector

    if backend.meta.output not in ("probs", "logits"):
        raise ConfigError(f"--collect {out_dir}: the model outputs '{backend.meta.output}'; collection needs "
                          "probabilities or logits (export the model with output=probs or logits)")
    cfg = load_collect_config(config, overrides)
    col = Collector(out_dir, cfg, backend.meta.classes, model_info(backend), source=source)
    stage("collect", f"collecting into {out_dir} ({len(col.store)} samples already there)")
    return col
