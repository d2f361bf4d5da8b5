#!/usr/bin/env python3
"""Two identical CPU trainings at once vs one alone: per-iteration slowdown of each.

Every worker is a fresh process that runs the demo's training step (SegFormer-B0 source-only,
batch 4, 128×128 crops, synthetic data: :class:`pipa_edge.bench.train_step.MethodRunner`), a few
warm-up steps, then ``--iters`` timed steps. For each thread setting: one worker alone, then two
workers started together (a file barrier after warm-up); a worker's slowdown is the median of its
steps while the other one was still running, divided by the median step of the worker alone.

Settings (``--configs``):

* ``old``      — the behaviour before ``pipa_edge.threads``: torch's default thread count, the
  OpenMP library's default wait policy (``OMP_WAIT_POLICY`` and ``OMP_NUM_THREADS`` unset);
* ``default``  — what ``pipa-edge train``/``demo`` do now (:func:`pipa_edge.threads.init_env` +
  :func:`pipa_edge.threads.set_threads` with no ``--threads``);
* ``POLICY:N`` — ``OMP_WAIT_POLICY=POLICY`` (``passive``/``active``) and N torch threads.

Needs a quiet machine (nothing else using the cores): the load average is printed and stored.

    .venv/bin/python bench/contention.py --iters 80 --json docs/results/contention.json
    .venv/bin/python bench/contention.py --iters 5 --warmup 1 --configs default --json /tmp/c.json   # smoke
    .venv/bin/python bench/contention.py --compete old &   # a competitor for timing `make demo` beside it

Each worker's JSON row records the spin count libgomp really used (``OMP_DISPLAY_ENV=VERBOSE``:
0 = passive waiting, 300000 = the GNU default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLEARED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _child_env(config: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PIPA_BENCH_CONFIG"] = config
    env["OMP_DISPLAY_ENV"] = "VERBOSE"  # libgomp reports the spin count it really uses (0 = passive)
    if ":" in config:
        policy, n = config.split(":", 1)
        env["OMP_WAIT_POLICY"], env["OMP_NUM_THREADS"] = policy.upper(), n
    return env


def worker(a: argparse.Namespace) -> None:
    """One training process: warm-up, signal ready, wait for go, time ``iters`` steps, print JSON."""
    cfg = os.environ.get("PIPA_BENCH_CONFIG", "default")
    policy = os.environ.get("OMP_WAIT_POLICY")  # as libgomp sees it when torch loads it (old: unset)
    if cfg == "old":
        import torch  # loads libgomp before pipa_edge could set OMP_WAIT_POLICY
    from pipa_edge import threads

    if cfg != "old":
        threads.init_env()
        threads.set_threads(None)
        policy = os.environ.get("OMP_WAIT_POLICY")
    import torch

    from pipa_edge.bench.latency import build_arch
    from pipa_edge.bench.train_step import MethodRunner, default_adapt_config, synthetic_batch

    seg = build_arch("segformer-b0", 0)
    batch = synthetic_batch(seg.classes, a.batch, (a.crop, a.crop), 0)
    runner = MethodRunner("source_only", seg, default_adapt_config(), "cpu", lr=1e-3)
    for _ in range(a.warmup):
        runner.step(batch)
    Path(a.ready).touch()
    while not Path(a.go).exists():
        time.sleep(0.01)
    steps = []
    for _ in range(a.iters):
        t0 = time.time()
        runner.step(batch)
        steps.append([t0, time.time() - t0])
    print(json.dumps({"config": cfg, "torch_threads": torch.get_num_threads(),
                      "omp_wait_policy": policy, "steps": steps}))


def _launch(config: str, n: int, a: argparse.Namespace) -> list[dict]:
    """Start ``n`` workers, release them together, return their reports."""
    with tempfile.TemporaryDirectory(prefix="pipa_contention_") as tmp:
        go = Path(tmp) / "go"
        procs, ready = [], []
        for i in range(n):
            r = Path(tmp) / f"ready{i}"
            ready.append(r)
            cmd = [sys.executable, __file__, "--worker", "--iters", str(a.iters), "--warmup", str(a.warmup),
                   "--batch", str(a.batch), "--crop", str(a.crop), "--ready", str(r), "--go", str(go)]
            procs.append(subprocess.Popen(cmd, env=_child_env(config), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        while not all(r.exists() for r in ready):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit(f"a worker of '{config}' failed before it was ready")
            time.sleep(0.05)
        go.touch()
        outs = [p.communicate() for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"a worker of '{config}' failed:\n{outs[0][1][-2000:]}")
    reps = []
    for out, err in outs:
        rep = json.loads(out.strip().splitlines()[-1])
        spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", err)
        rep["gomp_spincount"] = int(spin.group(1)) if spin else None  # None: not GNU OpenMP
        reps.append(rep)
    return reps


def _overlap_median(rep: dict, others: list[dict]) -> float:
    """Median step (s) among the steps that ended while every other worker was still running."""
    end = min(o["steps"][-1][0] + o["steps"][-1][1] for o in others)
    inside = [d for t, d in rep["steps"] if t + d <= end] or [d for _t, d in rep["steps"]]
    return statistics.median(inside)


def measure(config: str, a: argparse.Namespace) -> dict:
    solo = _launch(config, 1, a)[0]
    solo_med = statistics.median(d for _t, d in solo["steps"])
    pair = _launch(config, 2, a)
    meds = [_overlap_median(r, [o for o in pair if o is not r]) for r in pair]
    return {"config": config, "torch_threads": solo["torch_threads"], "omp_wait_policy": solo["omp_wait_policy"],
            "gomp_spincount": solo["gomp_spincount"],
            "solo_s_per_it": round(solo_med, 4), "pair_s_per_it": [round(m, 4) for m in meds],
            "slowdown": [round(m / solo_med, 3) for m in meds], "max_slowdown": round(max(meds) / solo_med, 3)}


def compete(config: str, a: argparse.Namespace) -> int:
    """An endless training of ``config``: this process becomes the worker (kill its pid to stop)."""
    tmp = Path(tempfile.mkdtemp(prefix="pipa_compete_"))
    (tmp / "go").touch()
    cmd = [sys.executable, __file__, "--worker", "--iters", str(10**9), "--warmup", "0", "--batch", str(a.batch),
           "--crop", str(a.crop), "--ready", str(tmp / "ready"), "--go", str(tmp / "go")]
    env = _child_env(config)
    env.pop("OMP_DISPLAY_ENV")
    print(f"competitor: endless '{config}' training, pid {os.getpid()}; stop with: kill {os.getpid()}",
          file=sys.stderr, flush=True)
    os.execve(sys.executable, cmd, env)
    return 1  # not reached


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["old", "default", "passive:1"])
    ap.add_argument("--iters", type=int, default=80, help="timed steps per worker (default 80)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4, help="images per step (the demo's 4)")
    ap.add_argument("--crop", type=int, default=128, help="square crop (the demo's 128)")
    ap.add_argument("--json", default=None, help="write the results here (e.g. docs/results/contention.json)")
    ap.add_argument("--compete", metavar="SETTING", default=None,
                    help="only run one training of SETTING until killed (a competitor for other timings, e.g. "
                         "`make demo`; 'old' = a 2-thread job with spinning OpenMP threads)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    ap.add_argument("--go", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return 0
    if a.compete:
        return compete(a.compete, a)
    from pipa_edge.bench.env import cpu_info

    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f} before the run: other processes use the cores, "
              "the slowdowns include them", file=sys.stderr)
    rows = [measure(c, a) for c in a.configs]
    print(f"{'setting':<12} {'threads':>7} {'OMP wait':>9} {'spin':>7} {'alone s/it':>10} {'pair s/it':>15} "
          f"{'slowdown':>13}")
    for r in rows:
        pair = " / ".join(f"{v:.3f}" for v in r["pair_s_per_it"])
        slow = " / ".join(f"{v:.2f}×" for v in r["slowdown"])
        print(f"{r['config']:<12} {r['torch_threads']:>7} {str(r['omp_wait_policy'] or 'unset'):>9} "
              f"{str(r['gomp_spincount']):>7} "
              f"{r['solo_s_per_it']:>10.3f} {pair:>15} {slow:>13}")
    if a.json:
        res = {"benchmark": "contention", "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "workload": {"arch": "segformer-b0", "method": "source_only", "batch": a.batch,
                            "crop": [a.crop, a.crop], "iters": a.iters, "warmup": a.warmup},
               "cpu": {k: v for k, v in cpu_info().items() if k in ("model", "logical_cpus", "usable_cpus")},
               "loadavg_before": [round(v, 2) for v in load_before],
               "loadavg_after": [round(v, 2) for v in os.getloadavg()], "results": rows}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
