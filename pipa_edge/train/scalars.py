"""Scalar logging: ``scalars.csv`` always (long format: ``iteration,tag,value,time``), plus
TensorBoard event files when ``torch.utils.tensorboard`` (the ``tensorboard`` package) is importable.

On resume, rows after the resumed iteration (written by the killed run after its last checkpoint)
are dropped so the CSV reads like one uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path


class ScalarWriter:
    def __init__(self, out_dir: str | Path, resume_from: int | None = None, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out_dir) / "scalars.csv"
        self._tb = None
        self.tensorboard = False
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_from is not None and self.path.is_file():
            self._truncate_after(resume_from)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")
        self._w = csv.writer(self._f)
        if new:
            self._w.writerow(["iteration", "tag", "value", "time"])
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional 'tensorboard' package

            self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tb"), purge_step=resume_from)
            self.tensorboard = True
        except Exception:  # noqa: BLE001 - not installed (ImportError) or broken install: CSV only
            self._tb = None

    def _truncate_after(self, iteration: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        keep = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= iteration]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        os.replace(tmp, self.path)

    def add(self, iteration: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = f"{time.time():.3f}"
        for tag, value in scalars.items():
            self._w.writerow([int(iteration), tag, f"{float(value):.6g}", now])
            if self._tb is not None:
                self._tb.add_scalar(tag, float(value), int(iteration))
        self._f.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_scalars(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(iteration, value), ...]}`` from a ``scalars.csv``."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["tag"], []).append((int(row["iteration"]), float(row["value"])))
    return out
