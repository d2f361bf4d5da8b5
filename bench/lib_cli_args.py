"""argparse ``type=`` helpers shared by the benchmark scripts of ``bench/`` (a sibling module they
import with ``bench/`` on ``sys.path``; not part of the library). A bad value: argparse's one-line
error naming the flag, exit code 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def named_checkpoint(spec: str) -> tuple[str, Path]:
    """``"NAME=PATH"`` → ``(NAME, Path(PATH))``; PATH must be an existing file."""
    name, _, path = spec.partition("=")
    if not name or not path or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"'{spec}': want NAME=PATH to an existing checkpoint")
    return name, Path(path)


def existing_dir(path: str) -> Path:
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"'{path}': not a directory")
    return Path(path)
