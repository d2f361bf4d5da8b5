"""Latency of a :class:`~pipa_edge.runtime.backends.base.Backend` on random or real frames.

Per case (model × backend × precision × resolution): warm-up (by count, or until stable), then
N timed ``infer`` calls. Host latency = wall-clock of the call (result back on the host; device
synchronised first when a GPU is used); GPU time = CUDA events around the call on torch's CUDA
stream (torch backend on a GPU only; ``None`` on CPU and for TensorRT / ORT-CUDA, which use their
own streams: they report host time after a device sync). Several cases are timed **interleaved** in rounds (case A block, case B
block, ... repeated) so that slow drift of a shared machine hits every case alike and the ratios
between rows stay fair.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pipa_edge.bench.env import TegraStats
from pipa_edge.bench.stats import LatencyStats, WarmupMonitor
from pipa_edge.bench.timer import cuda_available, time_call
from pipa_edge.errors import BackendUnavailable, PipaError

DEFAULT_IMGSZ = (512, 1024)
ARCH_CLASS_SET = "synth11"


def parse_imgsz(text: str | int | Sequence[int]) -> tuple[int, int]:
    """``512`` → (512, 512); ``512x1024`` / ``512,1024`` / ``[512, 1024]`` → (H, W)."""
    if isinstance(text, int):
        vals = [text]
    elif isinstance(text, str):
        vals = [v for v in text.lower().replace(",", "x").split("x") if v.strip()]
    else:
        vals = list(text)
    try:
        hw = [int(v) for v in vals]
    except ValueError:
        raise PipaError(f"--imgsz '{text}': expected H, HxW or H,W in pixels") from None
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) < 32 or any(v % 32 for v in hw):
        raise PipaError(f"--imgsz '{text}': need H and W, each a multiple of 32 (>= 32)")
    return hw[0], hw[1]


@dataclass
class Case:
    """One row of the table: an opened backend plus what identifies it."""

    label: str  # model argument as given (arch name or file)
    backend: object  # Backend
    size_mb: float | None
    path: str | None = None


@dataclass
class BenchResult:
    model: str
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int]
    batch: int
    size_mb: float | None
    host: LatencyStats
    gpu: LatencyStats | None
    warmup: dict
    samples_ms: list[float] = field(repr=False)
    gpu_samples_ms: list[float] | None = field(default=None, repr=False)
    energy_mj_per_frame: float | None = None
    power_mw: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.model}|{self.backend}|{self.precision}|{self.input_size[0]}x{self.input_size[1]}"

    def to_dict(self) -> dict:
        return {"key": self.key, "model": self.model, "backend": self.backend, "device": self.device,
                "precision": self.precision, "input_size": list(self.input_size), "batch": self.batch,
                "size_mb": self.size_mb, "host_ms": self.host.to_dict(),
                "gpu_ms": self.gpu.to_dict() if self.gpu else None, "warmup": self.warmup,
                "energy_mj_per_frame": self.energy_mj_per_frame, "power_mw": self.power_mw,
                "warnings": self.warnings, "samples_ms": [round(v, 4) for v in self.samples_ms],
                "gpu_samples_ms": [round(v, 4) for v in self.gpu_samples_ms] if self.gpu_samples_ms else None}


# ------------------------------------------------------------------------------- opening models
def _is_arch(spec: str) -> bool:
    from pipa_edge.runtime.backends import SUFFIX_BACKEND

    if Path(spec).suffix.lower() in SUFFIX_BACKEND or Path(spec).exists():
        return False  # a model file: telling so needs no model zoo (torch), which a device install lacks
    from pipa_edge.models.zoo import ARCHS

    return spec in ARCHS


def build_arch(arch: str, seed: int = 0):
    """Random-init segmenter of ``arch`` for the synth11 class set (quick benchmarks)."""
    import torch

    from pipa_edge.data.classes import get_class_set
    from pipa_edge.models.zoo import build_segmenter

    torch.manual_seed(seed)
    return build_segmenter(arch, get_class_set(ARCH_CLASS_SET)).eval()


def _param_mb(module) -> float:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers())) / 1e6


def _export_for_ort(seg, label: str, hw: tuple[int, int], workdir) -> Path:
    """Export ``seg`` as ``pipa-edge export`` does (exact folds, then :mod:`pipa_edge.export.onnx`;
    float NCHW in, logits at input size out)."""
    from pipa_edge.export.fold import fold_for_export
    from pipa_edge.export.onnx import build_meta, export_onnx
    from pipa_edge.runtime.backends.sidecar import save_onnx

    folder = Path(workdir or tempfile.mkdtemp(prefix="pipa-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}_{hw[0]}x{hw[1]}.onnx"
    xseg, folds = fold_for_export(seg)
    save_onnx(export_onnx(xseg, path, hw), path, build_meta(seg, hw, "float_nchw", "logits", "input", folds=folds))
    return path


def open_case(spec: str, backend: str | None = None, imgsz: tuple[int, int] | None = None, device: str = "cpu",
              threads: int | None = None, workdir: str | Path | None = None) -> Case:
    """Open ``spec`` (arch name, ``.pt`` checkpoint, ``.onnx``, ``.engine``, ``.xml``) with ``backend``.

    An arch name runs in torch eager. An arch name or a checkpoint asked for ``onnxruntime`` is
    exported (fresh, every time) through :func:`pipa_edge.export.onnx.export_onnx` into ``workdir``
    (a temp folder by default) and benched from that file.
    """
    from pipa_edge.runtime.backends import ALIASES, SUFFIX_BACKEND, backend_for, load_backend

    name = ALIASES.get((backend or "").lower(), (backend or "").lower()) or None
    is_arch = _is_arch(spec)
    is_ckpt = SUFFIX_BACKEND.get(Path(spec).suffix.lower()) == "torch"
    if is_arch and name in (None, "torch"):
        from pipa_edge.runtime.backends.torch_backend import TorchBackend

        seg = build_arch(spec)
        b = TorchBackend(segmenter=seg, input_size=imgsz or DEFAULT_IMGSZ, device=device, threads=threads)
        return Case(spec, b, round(_param_mb(seg), 3))
    if (is_arch or is_ckpt) and name == "onnxruntime":
        if is_arch:
            seg, label = build_arch(spec), spec
        else:
            from pipa_edge.models.io import load_segmenter

            seg, label = load_segmenter(spec), Path(spec).stem
        path = _export_for_ort(seg, label, imgsz or DEFAULT_IMGSZ, workdir)
        case = open_case(str(path), "onnxruntime", None, device, threads, workdir)
        case.label = f"{Path(spec).name if is_ckpt else spec}.onnx"
        return case
    if is_arch:
        raise BackendUnavailable(f"{spec}: an arch name runs on torch or onnxruntime only; export it first "
                                 f"(`pipa-edge export`) to bench '{backend}'")
    p = Path(spec)
    opts: dict = {}
    if threads:
        opts["threads"] = threads
    kind = backend_for(p, name)
    if kind == "torch":
        opts.update(device=device, input_size=imgsz or DEFAULT_IMGSZ)
    elif kind == "onnxruntime" and device.startswith("cuda"):
        opts["providers"] = "cuda"
    b = load_backend(p, name, **opts)
    size = round(p.stat().st_size / 1e6, 3) if p.is_file() else None
    return Case(str(spec), b, size, str(p))


# ---------------------------------------------------------------------------------- the loop
def make_frames(input_size: tuple[int, int], batch: int = 1, pool: int = 4, seed: int = 0,
                real: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """``pool`` batches ``(B, H, W, 3) uint8``: random, or real RGB images resized to ``input_size``."""
    h, w = input_size
    if real:
        import cv2

        imgs = [cv2.resize(np.asarray(im, np.uint8), (w, h), interpolation=cv2.INTER_AREA) for im in real]
        return [np.stack([imgs[(i * batch + j) % len(imgs)] for j in range(batch)]) for i in range(max(1, pool))]
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8) for _ in range(max(1, pool))]


class _Runner:
    """State of one case across interleaved rounds."""

    def __init__(self, case: Case, batch: int, warmup: int | None, warmup_s: float, frames=None, seed: int = 0):
        b = case.backend
        self.case, self.batch = case, batch
        self.frames = frames if frames is not None else make_frames(b.meta.input_size, batch, seed=seed)
        self.use_cuda = str(getattr(b, "device", "cpu")).startswith("cuda") and cuda_available()
        self.events = b.name == "torch"  # CUDA events sit on torch's stream: GPU time for the torch backend only
        self.monitor = WarmupMonitor(count=warmup, max_s=warmup_s)
        self.host: list[float] = []
        self.gpu: list[float] = []
        self.i = 0

    def once(self) -> tuple[float, float | None]:
        x = self.frames[self.i % len(self.frames)]
        self.i += 1
        return time_call(lambda: self.case.backend.infer(x), self.use_cuda, self.events)

    def warm(self) -> None:
        while not self.monitor.done:
            self.monitor.add(self.once()[0])

    def timed(self, n: int) -> None:
        for _ in range(n):
            h, g = self.once()
            self.host.append(h)
            if g is not None:
                self.gpu.append(g)

    def result(self, tegra: TegraStats | None = None) -> BenchResult:
        b = self.case.backend
        host = LatencyStats.from_samples(self.host, self.batch)
        gpu = LatencyStats.from_samples(self.gpu, self.batch) if self.gpu else None
        warns = []
        if host.high_cov:
            warns.append(f"high variation: CoV {host.cov:.0%} > 10 % (shared/noisy machine, throttling or "
                         "background load); compare p50 and interleave runs")
        if self.monitor.stable is False:
            warns.append(f"warm-up did not stabilise within {self.monitor.max_s:g} s "
                         f"({len(self.monitor.samples)} iterations)")
        energy = tegra.energy_mj_per_frame(host.mean / self.batch) if tegra is not None else None
        return BenchResult(model=self.case.label, backend=b.name, device=str(getattr(b, "device", "cpu")),
                           precision=b.precision, input_size=tuple(b.meta.input_size), batch=self.batch,
                           size_mb=self.case.size_mb, host=host, gpu=gpu, warmup=self.monitor.to_dict(),
                           samples_ms=list(self.host), gpu_samples_ms=list(self.gpu) or None,
                           energy_mj_per_frame=energy, power_mw=tegra.mean_mw if tegra is not None else None,
                           warnings=warns)


def bench_cases(cases: Sequence[Case], iters: int = 100, warmup: int | None = None, warmup_s: float = 30.0,
                batch: int = 1, rounds: int = 5, real_frames: Sequence[np.ndarray] | None = None,
                progress: bool = True) -> list[BenchResult]:
    """Warm every case up, then time ``iters`` calls per case, interleaved in ``rounds`` blocks.

    Energy per frame (Jetson with tegrastats) is only measured when there is a single case, since
    interleaving mixes the power of several models.
    """
    from pipa_edge.log import progress as bar

    if iters < 1:
        raise PipaError(f"--iters {iters}: need at least 1 timed iteration")
    runners = [_Runner(c, batch, warmup, warmup_s,
                       make_frames(c.backend.meta.input_size, batch, real=real_frames) if real_frames else None)
               for c in cases]
    rounds = max(1, min(rounds, iters))
    per = [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]
    tegra = TegraStats() if len(cases) == 1 else None
    with bar("warm-up", len(runners), disable=not progress) as pb:
        for r in runners:
            r.warm()
            pb.advance(1, info=r.case.label)
    with bar("timed", iters * len(runners), disable=not progress) as pb:
        if tegra is not None:
            tegra.__enter__()
        try:
            for n in per:
                for r in runners:
                    r.timed(n)
                    pb.advance(n)
        finally:
            if tegra is not None:
                tegra.__exit__(None, None, None)
    return [r.result(tegra) for r in runners]


def bench_backend(backend, iters: int = 100, warmup: int | None = None, warmup_s: float = 30.0, batch: int = 1,
                  label: str | None = None, size_mb: float | None = None, progress: bool = False) -> BenchResult:
    """Bench one already-opened backend (Python API twin of a one-row ``pipa-edge bench``)."""
    case = Case(label or backend.name, backend, size_mb)
    return bench_cases([case], iters=iters, warmup=warmup, warmup_s=warmup_s, batch=batch, rounds=1,
                       progress=progress)[0]


def default_threads() -> int | None:
    v = os.environ.get("OMP_NUM_THREADS")
    return int(v) if v and v.isdigit() else None
