"""Run statistics: per-second live line and the JSON summary written at exit."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

WINDOW = 10_000  # percentiles over the last N frames (bounded memory on endless runs)


def _pct(values, q: float) -> float | None:
    return float(np.percentile(np.fromiter(values, float), q)) if len(values) else None


@dataclass
class RunSummary:
    """What ``run_stream`` returns and ``--stats-json`` writes."""

    source: str
    output: str
    backend: str
    frames: int = 0  # frames written to the output
    inferred: int = 0  # frames the model ran on (keyframes)
    duration_s: float = 0.0
    fps: float = 0.0  # steady-state output rate: (frames - 1) / (last output - first output)
    latency_ms_p50: float | None = None  # capture → written to the sink
    latency_ms_p99: float | None = None
    age_ms_p50: float | None = None  # capture → inference starts (how stale the frame is)
    age_ms_p99: float | None = None
    infer_ms_p50: float | None = None  # backend.infer only
    infer_ms_mean: float | None = None
    preprocess_ms_p50: float | None = None
    temporal_ms_p50: float | None = None  # softmax + EMA + hysteresis
    temporal_pct_of_infer: float | None = None  # sum(temporal) / sum(infer) * 100
    motion_ms_p50: float | None = None  # flow + warp of the motion-compensated filter (part of temporal)
    render_ms_p50: float | None = None  # overlay + legend
    dropped: int = 0  # frames the capture dropped to stay on the latest one
    corrupt: int = 0  # frames skipped as corrupt/unreadable
    corrupt_files: list = field(default_factory=list)  # the first few unreadable files (image folders/globs)
    reconnects: int = 0
    flip_rate: float | None = None  # mean fraction of pixels whose label changed frame to frame
    smoothing: dict = field(default_factory=dict)
    collect: dict | None = None  # collector stats when --collect was used
    exit_reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def write_json(self, path: str | Path) -> Path:
        """Atomic; a full disk / read-only folder is one line (:class:`~pipa_edge.errors.WriteError`).
        URIs are redacted (no credentials in the file)."""
        from pipa_edge.fileio import write_text
        from pipa_edge.runtime.uri import redact

        d = self.to_dict()
        d["source"], d["output"] = redact(d["source"]), redact(d["output"])
        return write_text(path, json.dumps(d, indent=2) + "\n")

    def line(self) -> str:
        def ms(v):
            return "-" if v is None else f"{v:.1f}"

        flips = "-" if self.flip_rate is None else f"{100 * self.flip_rate:.2f}%"
        return (f"{self.frames} frames, {self.fps:.1f} fps, latency p50 {ms(self.latency_ms_p50)} ms "
                f"p99 {ms(self.latency_ms_p99)} ms, age p50 {ms(self.age_ms_p50)} ms, dropped {self.dropped}, "
                f"corrupt {self.corrupt}{self._named()}, reconnects {self.reconnects}, flip rate {flips}")

    def _named(self) -> str:
        if not self.corrupt_files:
            return ""
        more = self.corrupt - len(self.corrupt_files)
        return " (" + ", ".join(Path(f).name for f in self.corrupt_files) + (f" +{more} more" if more > 0 else "") + ")"


class StatsTracker:
    """Thread-safe counters and bounded windows of timings (seconds)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.t_start = time.monotonic()
        self.t_first_out: float | None = None
        self.t_last_out: float | None = None
        self.frames = 0
        self.inferred = 0
        self.dropped = 0
        self.corrupt = 0
        self.reconnects = 0
        self.latency: deque = deque(maxlen=WINDOW)
        self.age: deque = deque(maxlen=WINDOW)
        self.infer: deque = deque(maxlen=WINDOW)
        self.pre: deque = deque(maxlen=WINDOW)
        self.temporal: deque = deque(maxlen=WINDOW)
        self.motion: deque = deque(maxlen=WINDOW)
        self.render: deque = deque(maxlen=WINDOW)
        self.infer_sum = 0.0
        self.temporal_sum = 0.0
        self.flip_sum = 0.0
        self.flip_n = 0
        self._win = {"t": self.t_start, "frames": 0, "lat": [], "flip_sum": 0.0, "flip_n": 0}

    def model_step(self, pre_s: float, infer_s: float, temporal_s: float, motion_s: float = 0.0) -> None:
        with self._lock:
            self.motion.append(motion_s)
            self.inferred += 1
            self.pre.append(pre_s)
            self.infer.append(infer_s)
            self.temporal.append(temporal_s)
            self.infer_sum += infer_s
            self.temporal_sum += temporal_s

    def output(self, latency_s: float, age_s: float, render_s: float, flip: float | None) -> None:
        now = time.monotonic()
        with self._lock:
            self.frames += 1
            self.t_first_out = self.t_first_out or now
            self.t_last_out = now
            self.latency.append(latency_s)
            self.age.append(age_s)
            self.render.append(render_s)
            w = self._win
            w["frames"] += 1
            w["lat"].append(latency_s)
            if flip is not None:
                self.flip_sum += flip
                self.flip_n += 1
                w["flip_sum"] += flip
                w["flip_n"] += 1

    def window_line(self, dropped: int, corrupt: int) -> str:
        """Stats since the previous call (the live per-second line)."""
        now = time.monotonic()
        with self._lock:
            w, self._win = self._win, {"t": now, "frames": 0, "lat": [], "flip_sum": 0.0, "flip_n": 0}
            age = list(self.age)[-max(1, w["frames"]):] if w["frames"] else []
        dt = max(1e-6, now - w["t"])
        lat = w["lat"]
        p50 = f"{1000 * _pct(lat, 50):.0f}" if lat else "-"
        p99 = f"{1000 * _pct(lat, 99):.0f}" if lat else "-"
        a50 = f"{1000 * _pct(age, 50):.0f}" if age else "-"
        flips = f"{100 * w['flip_sum'] / w['flip_n']:.2f}%" if w["flip_n"] else "-"
        return (f"{w['frames'] / dt:5.1f} fps | latency p50 {p50} ms p99 {p99} ms | frame age {a50} ms | "
                f"dropped {dropped} | corrupt {corrupt} | flips {flips}")

    def summary(self, **fields) -> RunSummary:
        with self._lock:
            def ms(d, q):
                v = _pct(d, q)
                return None if v is None else round(1000 * v, 3)

            fps = 0.0
            if self.frames > 1 and self.t_last_out and self.t_first_out and self.t_last_out > self.t_first_out:
                fps = (self.frames - 1) / (self.t_last_out - self.t_first_out)
            s = RunSummary(
                frames=self.frames, inferred=self.inferred, duration_s=round(time.monotonic() - self.t_start, 3),
                fps=round(fps, 3), latency_ms_p50=ms(self.latency, 50), latency_ms_p99=ms(self.latency, 99),
                age_ms_p50=ms(self.age, 50), age_ms_p99=ms(self.age, 99), infer_ms_p50=ms(self.infer, 50),
                infer_ms_mean=round(1000 * self.infer_sum / self.inferred, 3) if self.inferred else None,
                preprocess_ms_p50=ms(self.pre, 50), temporal_ms_p50=ms(self.temporal, 50),
                motion_ms_p50=ms(self.motion, 50),
                temporal_pct_of_infer=(round(100 * self.temporal_sum / self.infer_sum, 3)
                                       if self.infer_sum > 0 else None),
                render_ms_p50=ms(self.render, 50),
                flip_rate=(self.flip_sum / self.flip_n) if self.flip_n else None, **fields)
        return s
