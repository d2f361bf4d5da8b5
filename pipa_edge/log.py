"""Coloured stage logs and progress bars (rich), shared by every CLI command."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True, highlight=False)
_quiet = bool(os.environ.get("PIPA_QUIET"))


def stage(name: str, msg: str) -> None:
    """``[export] wrote model.onnx`` — the Ultralytics-style stage prefix, in colour."""
    if not _quiet:
        console.print(f"[bold cyan]\\[{name}][/] {msg}")


def ok(name: str, msg: str) -> None:
    if not _quiet:
        console.print(f"[bold green]\\[{name}][/] {msg}")


def warn(name: str, msg: str) -> None:
    console.print(f"[bold yellow]\\[{name}] warning:[/] {msg}")


def error_line(msg: str) -> None:
    """The single line printed for a :class:`~pipa_edge.errors.PipaError`."""
    console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)


def next_command(cmd: str) -> None:
    if not _quiet:
        console.print(f"[bold]next:[/] [green]{cmd}[/]")


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


@contextmanager
def progress(desc: str, total: int | None, disable: bool = False) -> Iterator[Bar]:
    """A progress bar with count, elapsed time and ETA (rich), on stderr."""
    disable = disable or _quiet or bool(os.environ.get("PIPA_NO_PROGRESS"))
    cols = [TextColumn("[bold cyan]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*cols, console=console, disable=disable, transient=False) as prog:
        task = prog.add_task(desc, total=total, info="")
        yield Bar(prog, task)
