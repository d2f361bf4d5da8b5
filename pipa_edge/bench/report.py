"""Benchmark output: terminal table (rich), JSON, CSV, latency histogram + CDF (PNG), comparisons.

The JSON holds everything (environment, method, every raw sample), so any figure can be
recomputed; the CSV is one flat row per result for spreadsheets.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from pipa_edge.bench.stats import HIGH_COV, PERCENTILE_METHOD, ratio
from pipa_edge.errors import PipaError

FORMAT = "pipa-edge-bench/1"
CSV_FIELDS = ("key", "model", "backend", "device", "precision", "height", "width", "batch", "size_mb", "n", "min",
              "p50", "p90", "p99", "max", "mean", "std", "cov", "fps", "gpu_p50", "gpu_p99", "energy_mj_per_frame",
              "warmup_iters", "warmup_stable", "speed_vs_first")

METHOD = {
    "percentiles": PERCENTILE_METHOD,
    "std": "sample standard deviation (ddof=1); CoV = std / mean",
    "outliers": "kept (no clipping)",
    "fps": "batch * 1000 / p50_ms",
    "host_latency": "perf_counter around Backend.infer (output back on host; device synchronised when on GPU)",
    "gpu_time": "CUDA events on the torch stream around the call (torch backend on GPU only, else null)",
    "speed_vs_first": "p50 of the first row / p50 of this row (>1 = faster than the first row)",
    "high_cov_warning": f"CoV > {HIGH_COV:.0%}",
}


def make_console():
    """stdout console; 140 columns when not a terminal (files, CI logs) so tables do not fold."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=140)


def _fmt(v, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def rows_of(results: Sequence[dict]) -> list[dict]:
    """Flat rows (CSV/table) from result dicts (``BenchResult.to_dict()``)."""
    rows = []
    first = results[0]["host_ms"]["p50"] if results else None
    for r in results:
        h = r["host_ms"]
        g = r.get("gpu_ms") or {}
        w = r.get("warmup") or {}
        rows.append({"key": r["key"], "model": r["model"], "backend": r["backend"], "device": r.get("device"),
                     "precision": r["precision"], "height": r["input_size"][0], "width": r["input_size"][1],
                     "batch": r.get("batch", 1), "size_mb": r.get("size_mb"), "n": h["n"], "min": h["min"],
                     "p50": h["p50"], "p90": h["p90"], "p99": h["p99"], "max": h["max"], "mean": h["mean"],
                     "std": h["std"], "cov": h["cov"], "fps": h["fps"], "gpu_p50": g.get("p50"),
                     "gpu_p99": g.get("p99"), "energy_mj_per_frame": r.get("energy_mj_per_frame"),
                     "warmup_iters": w.get("iters"), "warmup_stable": w.get("stable"),
                     "speed_vs_first": ratio(first, h["p50"])})
    return rows


def print_table(results: Sequence[dict], title: str = "pipa-edge bench", console=None) -> None:
    from rich.table import Table

    console = console or make_console()
    rows = rows_of(results)
    has_gpu = any(r["gpu_p50"] is not None for r in rows)
    has_energy = any(r["energy_mj_per_frame"] is not None for r in rows)
    t = Table(title=title, title_justify="left")
    for col, just in (("model", "left"), ("backend", "left"), ("precision", "left"), ("imgsz", "right"),
                      ("size MB", "right"), ("p50 ms", "right"), ("p99 ms", "right"), ("CoV", "right"),
                      ("FPS", "right"), ("vs first", "right")):
        t.add_column(col, justify=just)
    if has_gpu:
        t.add_column("GPU p50 ms", justify="right")
    if has_energy:
        t.add_column("mJ/frame", justify="right")
    for r in rows:
        cov = f"{r['cov'] * 100:.1f}%"
        if r["cov"] > HIGH_COV:
            cov = f"[yellow]{cov}[/]"
        cells = [r["model"], r["backend"], r["precision"], f"{r['height']}x{r['width']}", _fmt(r["size_mb"], 1),
                 _fmt(r["p50"]), _fmt(r["p99"]), cov, _fmt(r["fps"], 1),
                 "-" if r["speed_vs_first"] is None else f"{r['speed_vs_first']:.2f}x"]
        if has_gpu:
            cells.append(_fmt(r["gpu_p50"]))
        if has_energy:
            cells.append(_fmt(r["energy_mj_per_frame"], 1))
        t.add_row(*cells)
    console.print(t)


def write_json(path: str | Path, payload: dict) -> Path:
    from pipa_edge.runtime.backends.sidecar import write_json_atomic

    return write_json_atomic(path, {"format": FORMAT, "method": METHOD, **payload})


def write_csv(path: str | Path, results: Sequence[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        for row in rows_of(results):
            wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def preload_matplotlib() -> None:
    """Import matplotlib (Agg) and its FreeType module now. Seen here: once a GStreamer pipeline has
    run in the process, a *first* import of ``matplotlib.ft2font`` segfaults (two FreeType builds
    in one process), so anything that plots after running the runtime must import it before."""
    try:
        import matplotlib
    except ModuleNotFoundError:  # device install (no `train` extra): no plots
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (pulls in ft2font)


def write_plot(path: str | Path, results: Sequence[dict], title: str = "latency") -> Path:
    """Histogram (left) and empirical CDF (right) of every result's host latency samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in results:
        x = np.sort(np.asarray(r["samples_ms"], dtype=float))
        label = f"{r['model']} {r['backend']} {r['precision']} {r['input_size'][0]}x{r['input_size'][1]}"
        ax_h.hist(x, bins=min(50, max(5, x.size // 4)), alpha=0.5, label=label)
        ax_c.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=label)
    for q in (0.5, 0.99):
        ax_c.axhline(q, color="grey", lw=0.6, ls="--")
    ax_h.set(xlabel="host latency (ms)", ylabel="count", title=f"{title}: histogram")
    ax_c.set(xlabel="host latency (ms)", ylabel="fraction of runs ≤ x", title=f"{title}: CDF (p50, p99 dashed)")
    ax_h.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(out_dir: str | Path, payload: dict, stem: str = "bench") -> dict[str, Path]:
    """``<out>/<stem>.json``, ``.csv`` and ``.png`` (plot only when there are latency results)."""
    out = Path(out_dir)
    files = {"json": write_json(out / f"{stem}.json", payload)}
    results = payload.get("results") or []
    if results:
        files["csv"] = write_csv(out / f"{stem}.csv", results)
        try:
            files["png"] = write_plot(out / f"{stem}.png", results)
        except ModuleNotFoundError as e:  # device install: matplotlib is in the `train` extra
            if e.name != "matplotlib":
                raise
    return files


# ----------------------------------------------------------------------------------- compare
def load_results(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise PipaError(f"{p}: benchmark JSON not found")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PipaError(f"{p}: not valid JSON (line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PipaError(f"{p}: not a pipa-edge bench JSON (format '{FORMAT}' expected)")
    return data


def compare(before: str | Path, after: str | Path) -> list[dict]:
    """Match results by key (model|backend|precision|HxW); ratio = after / before (< 1 = faster now)."""
    a, b = load_results(before), load_results(after)
    old = {r["key"]: r for r in a.get("results", [])}
    rows = []
    for r in b.get("results", []):
        o = old.get(r["key"])
        if o is None:
            continue
        rows.append({"key": r["key"], "before_p50": o["host_ms"]["p50"], "after_p50": r["host_ms"]["p50"],
                     "before_p99": o["host_ms"]["p99"], "after_p99": r["host_ms"]["p99"],
                     "p50_ratio": ratio(r["host_ms"]["p50"], o["host_ms"]["p50"]),
                     "p99_ratio": ratio(r["host_ms"]["p99"], o["host_ms"]["p99"]),
                     "speedup": ratio(o["host_ms"]["p50"], r["host_ms"]["p50"])})
    if not rows:
        raise PipaError(f"{after}: no result matches one in {before} (keys are model|backend|precision|HxW)")
    return rows


def print_compare(rows: Sequence[dict], before: str, after: str, console=None) -> None:
    from rich.table import Table

    console = console or make_console()
    t = Table(title=f"after / before  ({after} vs {before})", title_justify="left")
    for col in ("key", "p50 before", "p50 after", "p50 ratio", "p99 ratio", "speed-up"):
        t.add_column(col, justify="left" if col == "key" else "right")
    for r in rows:
        t.add_row(r["key"], _fmt(r["before_p50"]), _fmt(r["after_p50"]), _fmt(r["p50_ratio"], 3),
                  _fmt(r["p99_ratio"], 3), "-" if r["speedup"] is None else f"{r['speedup']:.2f}x")
    console.print(t)
