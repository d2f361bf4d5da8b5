"""The format of a collection folder (written by ``pipa-edge run SOURCE --collect DIR``) and its reader.

Layout of a collection folder (the writer is :mod:`pipa_edge.runtime.collect.store`)::

    DIR/meta.json            format, class set (ClassSet.to_dict()), creation time
    DIR/manifest.jsonl       one JSON record per line: {"op": "add", ...} or {"op": "del", ...}
    DIR/images/NAME.jpg|png  the frame (RGB)
    DIR/labels/NAME.png      pseudo-label, uint8 class index, 255 = ignore
    DIR/conf/NAME.png        optional max-probability map, uint8 (p × 255)

Only live manifest entries (:func:`replay` of :func:`read_manifest`) count: files of an
interrupted write are never read. No torch here (the device install reads collections too);
:class:`~pipa_edge.data.datasets.collected.CollectedDataset` serves a collection as a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipa_edge.data.classes import ClassSet
from pipa_edge.errors import DataError

FORMAT = "pipa-edge-collection/1"
MANIFEST = "manifest.jsonl"
META = "meta.json"


def read_manifest(root: Path) -> tuple[list[dict], list[str], int]:
    """``(records, problems, good_bytes)``. A final line without ``\\n`` (torn write) is skipped
    silently; ``good_bytes`` is the length of the valid prefix (for repair)."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return [], [], 0
    raw = path.read_bytes()
    records, problems, pos = [], [], 0
    for i, line in enumerate(raw.split(b"\n")[:-1] if raw else [], 1):
        pos += len(line) + 1
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or rec.get("op") not in ("add", "del") or "name" not in rec:
                raise ValueError("not a manifest record")
            records.append(rec)
        except ValueError as e:
            problems.append(f"{path}:{i}: bad manifest line ({e})")
    return records, problems, pos


def replay(records: list[dict]) -> dict[str, dict]:
    """Live samples after applying every add/del in order (insertion order = age)."""
    live: dict[str, dict] = {}
    for rec in records:
        if rec["op"] == "add":
            live[rec["name"]] = rec
        else:
            live.pop(rec["name"], None)
    return live


def read_meta(root: Path) -> dict:
    path = Path(root) / META
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        ClassSet.from_dict(meta["classes"])
        return meta
    except FileNotFoundError:
        raise DataError(f"{path}: not a pipa-edge collection (no meta.json)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable collection metadata ({e})") from None
