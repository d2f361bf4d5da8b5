"""Coloured stage logs and progress bars (rich), shared by every CLI command."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True, highlight=False)
_quiet = bool(os.environ.get("PIPA_QUIET"))


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) stage lines, tables and progress bars, as ``PIPA_QUIET=1`` does."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    """Whether stage lines, tables and progress bars are silenced."""
    return _quiet


def stage(name: str, msg: str) -> None:
    """``[export] wrote model.onnx`` — the Ultralytics-style stage prefix, in colour."""
    if not _quiet:
        console.print(f"[bold cyan]\\[{name}][/] {msg}", soft_wrap=True)


def ok(name: str, msg: str) -> None:
    if not _quiet:
        console.print(f"[bold green]\\[{name}][/] {msg}", soft_wrap=True)


def warn(name: str, msg: str) -> None:
    console.print(f"[bold yellow]\\[{name}] warning:[/] {msg}", soft_wrap=True)


def error_line(msg: str) -> None:
    """The single line printed for a :class:`~pipa_edge.errors.PipaError`."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True)  # escaped: "pipa-edge[train]" stays


def next_command(cmd: str) -> None:
    if not _quiet:
        console.print(f"[bold]next:[/] [green]{cmd}[/]", soft_wrap=True)


class Bar:
    """Handle yielded by :func:`progress`: ``bar.advance(1, info="loss 0.31")``."""

    def __init__(self, prog: Progress, task):
        self._p, self._t = prog, task

    def advance(self, n: float = 1, info: str | None = None) -> None:
        if info is None:
            self._p.update(self._t, advance=n)
        else:
            self._p.update(self._t, advance=n, info=info)

    def set_info(self, info: str) -> None:
        self._p.update(self._t, info=info)


class PlainBar:
    """Progress off a terminal (CI, nohup, journald, ``cmd > log 2>&1``): one plain line every
    ``every_s`` seconds (``PIPA_PROGRESS_INTERVAL``, default 30) and at the end:
    ``[train] 120/300 (40%) · loss 0.412 lr 5.1e-04 · 0.31 s/it · ETA 0:00:56``."""

    def __init__(self, desc: str, total: int | None, every_s: float, clock=time.monotonic):
        self.desc, self.total, self.every_s, self._clock = desc, total, every_s, clock
        self.done, self.info = 0.0, ""
        self._t_mark = self._t_print = clock()
        self._n_mark = 0.0
        self._rate: float | None = None  # seconds per item since the last line
        self._started = False

    def advance(self, n: float = 1, info: str | None = None) -> None:
        if info is not None:
            self.info = info
        if not self._started:  # the first jump (e.g. a resumed run's start) is not timed
            self._started = True
            if info is None and n > 1:
                self.done += n
                self._n_mark, self._t_mark = self.done, self._clock()
                return
        self.done += n
        now = self._clock()
        if now - self._t_print >= self.every_s or (self.total is not None and self.done >= self.total):
            self._emit(now)

    def set_info(self, info: str) -> None:
        self.info = info

    def _emit(self, now: float) -> None:
        if self.done > self._n_mark:
            self._rate = (now - self._t_mark) / (self.done - self._n_mark)
        self._t_mark, self._n_mark, self._t_print = now, self.done, now
        console.print(self.line(), soft_wrap=True, highlight=False, markup=False)

    def line(self) -> str:
        done = int(self.done) if float(self.done).is_integer() else round(self.done, 2)
        parts = [f"[{self.desc}] {done}/{self.total} ({100 * self.done / self.total:.0f}%)"
                 if self.total else f"[{self.desc}] {done}"]
        if self.info:
            parts.append(self.info)
        if self._rate is not None:
            parts.append(f"{self._rate:.3g} s/it" if self._rate >= 0.01 else f"{1 / max(self._rate, 1e-9):.0f} it/s")
            if self.total:
                eta = int(round(max(0.0, self.total - self.done) * self._rate))
                parts.append(f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
        return " · ".join(parts)


def plain_progress() -> bool:
    """True when progress goes out as plain lines: ``PIPA_PROGRESS=plain``, or stderr is not a terminal
    (``PIPA_PROGRESS=bar`` forces the bar)."""
    mode = os.environ.get("PIPA_PROGRESS", "").strip().lower()
    if mode in ("plain", "bar"):
        return mode == "plain"
    return not console.is_terminal


def progress_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PIPA_PROGRESS_INTERVAL", "30")))
    except ValueError:
        return 30.0


@contextmanager
def progress(desc: str, total: int | None, disable: bool = False) -> Iterator[Bar]:
    """A progress bar with count, elapsed time and ETA (rich) on a terminal, plain periodic lines
    elsewhere (:class:`PlainBar`); on stderr."""
    disable = disable or _quiet or bool(os.environ.get("PIPA_NO_PROGRESS"))
    if not disable and plain_progress():
        bar = PlainBar(desc, total, progress_interval())
        console.print(bar.line(), soft_wrap=True, highlight=False, markup=False)  # not silent until the first line
        yield bar  # type: ignore[misc]
        return
    cols = [TextColumn("[bold cyan]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*cols, console=console, disable=disable, transient=False) as prog:
        task = prog.add_task(desc, total=total, info="")
        yield Bar(prog, task)
