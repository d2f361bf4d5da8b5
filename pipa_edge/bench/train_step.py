"""Training-side benchmark: iteration time and peak memory of source-only, mean teacher and PiPa++.

Every method gets the *same* synthetic batch (uint8 images, random labels over the class set), a
copy of the *same* initial segmenter, and a full training step as the trainer runs it:
``training_step`` → ``backward`` → SGD step → ``after_optimizer_step`` (EMA update). Iteration
numbers start at 100 000 so every warm-up ramp (pseudo-label / contrastive weights) is fully on
and no objective is skipped. Methods are timed **interleaved** in rounds, so machine drift hits
them alike and their ratios are fair.

Peak memory: on GPU ``torch.cuda.max_memory_allocated`` (reset per method); on CPU the process
resident set size (RSS) sampled every 2 ms while the method's steps run, reported as the peak
and as the rise above the RSS just before them. CPU numbers are approximate (the allocator keeps
freed memory, so later methods can look smaller): ``isolate=True`` measures memory of each method
in a fresh subprocess instead.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from typing import Sequence

from pipa_edge.bench.stats import LatencyStats

METHODS = ("source_only", "mean_teacher", "pipa")
_START_IT = 100_000


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class RssPeak:
    """Peak RSS (MB) while the ``with`` block runs, sampled by a thread."""

    def __init__(self, every_s: float = 0.002):
        self.every_s, self.baseline, self.peak = every_s, 0.0, 0.0
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(self.every_s)

    def __enter__(self) -> "RssPeak":
        self.baseline = self.peak = _rss_mb()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._t is not None:
            self._t.join()
        self.peak = max(self.peak, _rss_mb())


def default_adapt_config(overrides: Sequence[str] = ()):
    """PiPa++ as benchmarked: pixel + patch contrast on, task-smart sampling (the library defaults
    leave the contrastive objectives off). ``mean_teacher`` gets the same config; the adapter
    switches the contrastive parts off for it. ``overrides`` are ``key.sub=value`` strings."""
    from pipa_edge.adapt.config import AdaptConfig
    from pipa_edge.config import apply_overrides, validate

    data = {"pixel_contrast": {"enabled": True}, "patch_contrast": {"enabled": True},
            "sampler": {"kind": "task_smart"}}
    return validate(AdaptConfig, apply_overrides(data, overrides, "--adapt-set"), where="--adapt-set")


def synthetic_batch(classes, batch: int, hw: tuple[int, int], seed: int = 0) -> dict:
    """The trainer's batch layout (see :mod:`pipa_edge.adapt.base`), random content."""
    import torch

    g = torch.Generator().manual_seed(seed)
    h, w = hw
    img = lambda: torch.randint(0, 256, (batch, 3, h, w), generator=g, dtype=torch.uint8)  # noqa: E731
    label = torch.randint(0, classes.num_classes, (batch, h, w), generator=g, dtype=torch.int64)
    return {"source": {"image": img(), "label": label}, "target": {"image": img(), "image_prev": img()}}


def _to(batch: dict, device: str) -> dict:
    return {k: _to(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


class MethodRunner:
    """One method (``source_only`` / ``mean_teacher`` / ``pipa``) on a copy of ``segmenter`` with SGD;
    :meth:`step` runs one full training step (forward, backward, optimiser, EMA) and returns its ms."""

    def __init__(self, name: str, segmenter, adapt_cfg, device: str, lr: float):
        import torch

        from pipa_edge.train.method import build_method

        self.name = name
        self.method = build_method(name, copy.deepcopy(segmenter), adapt_cfg).to(device).train()
        self.opt = torch.optim.SGD(self.method.trainable_parameters(), lr=lr, momentum=0.9)
        self.it = _START_IT
        self.samples: list[float] = []
        self.device = device
        self.cuda = device.startswith("cuda")

    def step(self, batch: dict) -> float:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        loss, _logs = self.method.training_step(batch, self.it)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.method.after_optimizer_step(self.it)
        if self.cuda:
            torch.cuda.synchronize()
        self.it += 1
        return (time.perf_counter_ns() - t0) / 1e6

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.method.trainable_parameters())


def _memory_of(runner: MethodRunner, batch: dict, steps: int) -> dict:
    import torch

    if runner.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(steps):
            runner.step(batch)
        peak = torch.cuda.max_memory_allocated()
        return {"kind": "cuda_max_memory_allocated", "peak_mb": peak / 1e6, "rise_mb": (peak - base) / 1e6}
    with RssPeak() as rss:
        for _ in range(steps):
            runner.step(batch)
    return {"kind": "cpu_rss_sampled", "peak_mb": rss.peak, "rise_mb": rss.peak - rss.baseline}


def bench_train_step(arch: str = "segformer-b0", methods: Sequence[str] = METHODS, batch: int = 2,
                     imgsz: tuple[int, int] = (128, 128), iters: int = 10, warmup: int = 2, rounds: int = 5,
                     device: str = "cpu", adapt_cfg=None, isolate: bool = False, seed: int = 0) -> list[dict]:
    """Per method: step-time stats (ms), peak memory, trainable parameter count, ratio to the first."""
    import torch

    from pipa_edge.bench.latency import build_arch

    seg = build_arch(arch, seed)
    adapt_cfg = adapt_cfg if adapt_cfg is not None else default_adapt_config()
    data = _to(synthetic_batch(seg.classes, batch, imgsz, seed), device)
    runners = []
    for m in methods:
        torch.manual_seed(seed)
        runners.append(MethodRunner(m, seg, adapt_cfg, device, lr=1e-3))
    memory = {}
    for r in runners:  # warm-up doubles as the memory measurement (first steps allocate the most)
        if isolate:
            for _ in range(warmup):
                r.step(data)
            memory[r.name] = memory_in_subprocess(arch, r.name, batch, imgsz, max(1, warmup), device)
        else:
            memory[r.name] = _memory_of(r, data, max(1, warmup))
    rounds = max(1, min(rounds, iters))
    per = [iters // rounds + (1 if i < iters % rounds else 0) for i in range(rounds)]
    for n in per:
        for r in runners:
            for _ in range(n):
                r.samples.append(r.step(data))
    out, first = [], None
    for r in runners:
        st = LatencyStats.from_samples(r.samples, batch)
        first = first or st.p50
        out.append({"method": r.name, "arch": arch, "batch": batch, "input_size": list(imgsz), "device": device,
                    "step_ms": st.to_dict(), "memory": memory[r.name], "trainable_params": r.n_trainable(),
                    "p50_vs_first": st.p50 / first, "samples_ms": [round(v, 3) for v in r.samples]})
    return out


def print_train(rows: Sequence[dict], console=None) -> None:
    from rich.table import Table

    from pipa_edge.bench.report import make_console

    console = console or make_console()
    if not rows:
        return
    r0 = rows[0]
    t = Table(title=f"training step: {r0['arch']}, batch {r0['batch']}, {r0['input_size'][0]}x{r0['input_size'][1]}, "
                    f"{r0['device']} (same batch, interleaved)", title_justify="left")
    for col in ("method", "p50 ms", "p99 ms", "CoV", "vs first", "peak MB", "rise MB", "trainable params"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        s, m = r["step_ms"], r["memory"]
        t.add_row(r["method"], f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['cov'] * 100:.1f}%",
                  f"{r['p50_vs_first']:.2f}x", f"{m['peak_mb']:.0f}", f"{m['rise_mb']:.0f}",
                  f"{r['trainable_params'] / 1e6:.2f} M")
    console.print(t)
    console.print(f"memory: {r0['memory']['kind']}")


def memory_in_subprocess(arch: str, method: str, batch: int, imgsz: tuple[int, int], steps: int,
                         device: str = "cpu", timeout: float = 600.0) -> dict:
    """Peak memory of ``steps`` steps of one method in a fresh Python process (clean allocator)."""
    args = json.dumps({"arch": arch, "method": method, "batch": batch, "imgsz": list(imgsz), "steps": steps,
                       "device": device})
    proc = subprocess.run([sys.executable, "-m", "pipa_edge.bench.train_step", args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"memory subprocess for {method} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(argv: list[str]) -> None:
    import torch

    from pipa_edge.bench.latency import build_arch

    a = json.loads(argv[0])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    seg = build_arch(a["arch"])
    data = _to(synthetic_batch(seg.classes, a["batch"], tuple(a["imgsz"])), a["device"])
    torch.manual_seed(0)
    runner = MethodRunner(a["method"], seg, default_adapt_config(a.get("adapt_set", [])), a["device"], lr=1e-3)
    mem = _memory_of(runner, data, a["steps"])
    mem["isolated"] = True
    print(json.dumps(mem))


if __name__ == "__main__":  # pragma: no cover - exercised through memory_in_subprocess
    _child(sys.argv[1:])
