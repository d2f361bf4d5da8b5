"""Crash-safe storage of collected samples: atomic files, an append-only JSONL manifest, quotas.

The folder layout, the manifest reader and :class:`CollectedDataset` (a collection read back as a
dataset) live in :mod:`pipa_edge.data.collection` (and :mod:`pipa_edge.data.datasets.collected`).

Write order (a kill at any point leaves no live entry without its files):

1. each file: write to ``.NAME.ext.tmp`` → fsync → rename → fsync the folder;
2. then one ``add`` line appended to the manifest (one ``write`` call) → fsync.

Removal appends a ``del`` line first, then unlinks. Files no live entry references (a kill between
1 and 2, or after a ``del``) and ``*.tmp`` files are *orphans*: :meth:`Store.open` deletes them,
truncates a torn last manifest line and compacts a manifest dominated by ``del`` lines.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from pipa_edge import fileio
from pipa_edge.data.classes import ClassSet
from pipa_edge.data.collection import FORMAT, MANIFEST, META, read_manifest, read_meta, replay
from pipa_edge.errors import DataError

SUBDIRS = {"image": "images", "label": "labels", "conf": "conf"}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writer(data: bytes):
    """For :func:`pipa_edge.fileio.atomic_write` (``guard=False``: the raw ``OSError`` reaches the
    collector, which decides what a full disk means: stop collecting, keep segmenting)."""
    return lambda f: _write_all(f.fileno(), data)


def torn_tail(root: Path) -> int:
    """Bytes after the manifest's last newline: a line whose write was cut short (0 when none).
    :meth:`Store.open` drops it; ``collect verify`` reports it."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return 0
    raw = path.read_bytes()
    return len(raw) - (raw.rfind(b"\n") + 1)


def sample_files(root: Path) -> set[str]:
    """Relative paths of every file under the sample sub-folders (temp files included)."""
    out = set()
    for sub in SUBDIRS.values():
        d = Path(root) / sub
        if d.is_dir():
            out.update(f"{sub}/{p.name}" for p in d.iterdir() if p.is_file())
    return out


def find_orphans(root: Path, live: dict[str, dict]) -> list[str]:
    """Sample files no live entry references, and temp files (also meta/manifest rewrites cut short)."""
    referenced = {f["path"] for rec in live.values() for f in rec.get("files", {}).values()}
    stray = {p.name for p in Path(root).glob(".*.tmp")}
    return sorted((sample_files(root) - referenced) | stray)


def entry_bytes(rec: dict) -> int:
    return int(sum(f["bytes"] for f in rec.get("files", {}).values()))


def usefulness(entries: list[dict], presence: float, k: int) -> np.ndarray:
    """Per sample ``Σ_c frac_c / count_c`` over its present classes (low = redundant: its classes
    are common in the collection); ``frac_c`` is the class's pixel fraction in the sample."""
    if not entries:
        return np.zeros(0)
    hist = np.zeros((len(entries), k))
    for i, e in enumerate(entries):
        h = np.asarray(e.get("class_hist", [])[:k], np.float64)
        hist[i, : h.size] = h / max(1, int(e.get("pixels", 0)) or h.sum() or 1)
    present = hist >= max(presence, 1e-12)
    counts = present.sum(axis=0)
    return (np.where(present, hist, 0.0) / np.maximum(counts, 1)).sum(axis=1)


def eviction_order(entries: list[dict], policy: str, presence: float, k: int, n: int) -> list[str]:
    """Names of the ``n`` samples to evict first: oldest, or least useful (ties → oldest)."""
    if policy == "oldest":
        return [e["name"] for e in entries[:n]]
    left = list(entries)
    out = []
    for _ in range(min(n, len(left))):
        i = int(np.argmin(usefulness(left, presence, k)))  # argmin returns the first (oldest) tie
        out.append(left.pop(i)["name"])
    return out


class Store:
    """An open collection folder (single writer: an advisory lock guards ``DIR/.lock``)."""

    def __init__(self, root: str | Path, classes: ClassSet | None = None, *, create: bool = True):
        self.root = Path(root)
        if not self.root.exists():
            if not create:
                raise DataError(f"{self.root}: collection folder not found")
            self.root.mkdir(parents=True)
        elif not self.root.is_dir():
            raise DataError(f"{self.root}: collection path is not a folder")
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise DataError(f"{self.root}: collection is in use by another process") from None
        for sub in SUBDIRS.values():
            (self.root / sub).mkdir(exist_ok=True)
        if (self.root / META).exists():
            self.meta = read_meta(self.root)
            self.classes = ClassSet.from_dict(self.meta["classes"])
            if classes is not None and tuple(classes.names) != self.classes.names:
                self.close()
                raise DataError(f"{self.root}: collection has classes {self.classes.name} "
                                f"({self.classes.num_classes}), the model has {classes.name} ({classes.num_classes})")
        else:
            if classes is None:
                self.close()
                raise DataError(f"{self.root}: not a pipa-edge collection (no meta.json)")
            self.meta = {"format": FORMAT, "classes": classes.to_dict(), "created": time.time()}
            fileio.atomic_write(self.root / META, _writer(json.dumps(self.meta, indent=1).encode()), guard=False)
            self.classes = classes
        self.cleaned: list[str] = []
        self._repair()
        self._mf = os.open(self.root / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    # -- opening ----------------------------------------------------------------------------
    def _repair(self) -> None:
        records, problems, good = read_manifest(self.root)
        mpath = self.root / MANIFEST
        if mpath.exists() and mpath.stat().st_size != good:
            os.truncate(mpath, good)  # drop a torn last line
        self.live = replay(records)
        self.next_seq = 1 + max((int(r.get("seq", 0)) for r in records), default=0)
        for rel in find_orphans(self.root, self.live):
            try:
                os.unlink(self.root / rel)
                self.cleaned.append(rel)
            except OSError:
                pass
        n_del = sum(r["op"] == "del" for r in records)
        if problems or n_del > max(64, len(self.live)):
            self._rewrite_manifest()
        self.total_bytes = sum(entry_bytes(r) for r in self.live.values())

    def _rewrite_manifest(self) -> None:
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self.live.values()).encode()
        fileio.atomic_write(self.root / MANIFEST, _writer(data), guard=False)
        fsync_dir(self.root)
        if getattr(self, "_mf", None) is not None:
            os.close(self._mf)
            self._mf = os.open(self.root / MANIFEST, os.O_WRONLY | os.O_APPEND, 0o644)

    def close(self) -> None:
        for attr in ("_mf", "_lock_fd"):
            fd = getattr(self, attr, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- queries ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.live)

    def hashes(self) -> np.ndarray:
        return np.array([int(r["phash"], 16) for r in self.live.values() if r.get("phash")], np.uint64)

    def class_counts(self, presence: float) -> np.ndarray:
        k = self.classes.num_classes
        counts = np.zeros(k, np.int64)
        for r in self.live.values():
            h = np.asarray(r.get("class_hist", [0] * k)[:k], np.float64)
            counts[: h.size] += h / max(1, int(r.get("pixels", 0)) or h.sum() or 1) >= max(presence, 1e-12)
        return counts

    # -- writing ----------------------------------------------------------------------------
    def _append(self, rec: dict) -> None:
        _write_all(self._mf, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
        os.fsync(self._mf)

    def add(self, blobs: dict[str, tuple[str, bytes]], info: dict) -> str:
        """Write one sample (``{"image": (".jpg", bytes), "label": (".png", bytes), ...}``) and its
        manifest line; returns its name. On error the sample's files are removed and it re-raises."""
        name = f"{self.next_seq:07d}"
        files, written = {}, []
        try:
            for kind, (ext, data) in blobs.items():
                rel = f"{SUBDIRS[kind]}/{name}{ext}"
                fileio.atomic_write(self.root / rel, _writer(data), guard=False)
                written.append(rel)
                files[kind] = {"path": rel, "bytes": len(data), "sha256": sha256(data)}
            for sub in {SUBDIRS[k] for k in blobs}:
                fsync_dir(self.root / sub)
            rec = {"op": "add", "name": name, "seq": self.next_seq, "time": round(time.time(), 3), **info,
                   "files": files}
            self._append(rec)
        except BaseException:
            for rel in written:
                try:
                    os.unlink(self.root / rel)
                except OSError:
                    pass
            raise
        finally:
            self.next_seq += 1
        self.live[name] = rec
        self.total_bytes += entry_bytes(rec)
        return name

    def remove(self, names: list[str], reason: str) -> int:
        """Append one ``del`` line per sample, then delete its files; returns bytes freed."""
        freed = 0
        for name in names:
            rec = self.live.get(name)
            if rec is None:
                continue
            self._append({"op": "del", "name": name, "reason": reason, "time": round(time.time(), 3)})
            del self.live[name]
            freed += entry_bytes(rec)
            for f in rec.get("files", {}).values():
                try:
                    os.unlink(self.root / f["path"])
                except FileNotFoundError:
                    pass
        self.total_bytes -= freed
        return freed

    def make_room(self, new_bytes: int, max_bytes: int | None, max_samples: int | None, policy: str,
                  presence: float) -> list[str]:
        """Evict until one more sample of ``new_bytes`` fits both quotas; returns evicted names."""
        rest = list(self.live.values())
        k = self.classes.num_classes
        total = self.total_bytes
        victims: list[str] = []
        while rest and ((max_samples is not None and len(rest) + 1 > max_samples)
                        or (max_bytes is not None and total + new_bytes > max_bytes)):
            name = eviction_order(rest, policy, presence, k, 1)[0]
            i = next(j for j, e in enumerate(rest) if e["name"] == name)
            total -= entry_bytes(rest.pop(i))
            victims.append(name)
        self.remove(victims, reason=f"evict:{policy}")
        return victims
