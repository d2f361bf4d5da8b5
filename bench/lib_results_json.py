"""A benchmark JSON that grows run by run (a sibling module of the ``bench/`` scripts, not part of
the library): the scripts that score checkpoints one command at a time (``bn_scale.py``,
``pl_coverage.py``) add their rows to one file instead of replacing it, and refuse a file written
with another setting (other data, threshold, ...), since its rows would not be comparable with the
new ones.

File layout: ``{**setting, "commands": [command, ...], "results": {name: row, ...}}``.
"""

from __future__ import annotations

import json
from pathlib import Path


class SettingMismatch(ValueError):
    """The file holds results of another setting; the message names the file and the first key."""


def open_results(path: str | Path, setting: dict, command: str) -> dict:
    """The results dict to add rows to: the file's (same setting) or a new one; ``command`` is appended.

    A file of the earlier one-command layout (``"command": str``) is read as ``commands: [it]``.
    """
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    for key, value in setting.items():
        if old and old.get(key) != value:
            raise SettingMismatch(f"--json '{path}' holds results of another setting ({key}: "
                                  f"{old.get(key)!r} there, {value!r} now); pick another file")
    commands = list(old.get("commands", [])) or ([old["command"]] if "command" in old else [])
    return {**setting, "commands": commands + [command], "results": dict(old.get("results", {}))}


def write_results(path: str | Path, res: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2))
