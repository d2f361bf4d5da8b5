"""``pipa-edge collect stats|verify|prune DIR``: the Python API twins of the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipa_edge.data.classes import ClassSet
from pipa_edge.data.collection import MANIFEST, read_manifest, read_meta, replay
from pipa_edge.errors import DataError
from pipa_edge.runtime.collect.store import Store, entry_bytes, eviction_order, find_orphans, sha256


def _need_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: collection folder not found")
    return root


def collection_stats(root: str | Path, presence: float = 0.01) -> dict:
    """Counts, per-class pixel histogram and sample presence, bytes, time span."""
    root = _need_dir(root)
    meta = read_meta(root)
    classes = ClassSet.from_dict(meta["classes"])
    records, problems, _ = read_manifest(root)
    live = replay(records)
    k = classes.num_classes
    pix = np.zeros(k, np.int64)
    present = np.zeros(k, np.int64)
    ignored = total = 0
    for r in live.values():
        h = np.asarray(r.get("class_hist", [0] * k)[:k], np.int64)
        n = int(r.get("pixels", 0)) or int(h.sum()) or 1
        pix[: h.size] += h
        present[: h.size] += h / n >= presence
        total += n
        ignored += n - int(h.sum())
    times = [r.get("time", 0.0) for r in live.values()]
    evicted = sum(1 for r in records if r["op"] == "del")
    sources = sorted({str(r.get("source", "")) for r in live.values()})
    models = sorted({str((r.get("model") or {}).get("sha256", ""))[:12] for r in live.values()})
    return {"root": str(root), "classes": classes.name, "samples": len(live), "removed": evicted,
            "bytes": int(sum(entry_bytes(r) for r in live.values())),
            "ignored_fraction": ignored / total if total else 0.0,
            "class_pixels": {n: int(v) for n, v in zip(classes.names, pix)},
            "class_samples": {n: int(v) for n, v in zip(classes.names, present)},
            "first_time": min(times) if times else None, "last_time": max(times) if times else None,
            "sources": sources, "models": models, "manifest_problems": problems}


def verify_collection(root: str | Path, check_hashes: bool = True, decode: bool = True) -> dict:
    """Every live entry has its files with matching size (and sha256), decodable, label shape ==
    image shape, label values < K or 255. Returns ``{"entries", "problems", "orphans"}``; orphans
    (files no entry references, temp files) are listed but are not problems."""
    root = _need_dir(root)
    problems: list[str] = []
    try:
        meta = read_meta(root)
        k = ClassSet.from_dict(meta["classes"]).num_classes
    except DataError as e:
        return {"entries": 0, "problems": [str(e)], "orphans": []}
    records, bad, _ = read_manifest(root)
    problems += bad
    live = replay(records)
    for name, rec in live.items():
        files = rec.get("files") or {}
        if "image" not in files or "label" not in files:
            problems.append(f"{name}: manifest entry lacks image/label files")
            continue
        arrays = {}
        for kind, f in files.items():
            p = root / f["path"]
            if not p.is_file():
                problems.append(f"{name}: missing {kind} file {f['path']}")
                continue
            data = p.read_bytes()
            if len(data) != f["bytes"]:
                problems.append(f"{name}: {f['path']} has {len(data)} bytes, manifest says {f['bytes']}")
                continue
            if check_hashes and sha256(data) != f["sha256"]:
                problems.append(f"{name}: {f['path']} sha256 differs from the manifest")
                continue
            if decode:
                arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if arr is None:
                    problems.append(f"{name}: {f['path']} cannot be decoded")
                    continue
                arrays[kind] = arr
        if decode and "image" in arrays and "label" in arrays:
            img, lab = arrays["image"], arrays["label"]
            if lab.ndim != 2 or lab.shape != img.shape[:2]:
                problems.append(f"{name}: label shape {lab.shape} does not match image {img.shape[:2]}")
            elif np.any((lab >= k) & (lab != 255)):
                problems.append(f"{name}: label has values outside 0..{k - 1} and 255")
    from pipa_edge.runtime.collect.store import torn_tail

    rep = {"entries": len(live), "problems": problems, "orphans": find_orphans(root, live)}
    if torn_tail(root):  # a cut-short last manifest line (dropped at the next collection start)
        rep["torn_tail_bytes"] = torn_tail(root)
    return rep


def prune_collection(root: str | Path, *, max_bytes: int | None = None, max_samples: int | None = None,
                     policy: str = "redundant", min_confident_fraction: float | None = None,
                     max_mean_entropy: float | None = None, quota_per_class: int | None = None,
                     presence: float = 0.01, dry_run: bool = False) -> dict:
    """Apply new thresholds/quotas to an existing collection; returns ``{"removed": [...], ...}``.

    Order: entries failing the new thresholds go first; then per-class quotas (a sample goes when
    every class present in it is over quota, least useful first); then the sample/byte quotas."""
    root = _need_dir(root)
    with Store(root, create=False) as store:
        k = store.classes.num_classes
        entries = list(store.live.values())
        drop: list[str] = []
        for e in entries:
            if min_confident_fraction is not None and e.get("confident_fraction", 1.0) < min_confident_fraction:
                drop.append(e["name"])
            elif max_mean_entropy is not None and e.get("mean_entropy", 0.0) > max_mean_entropy:
                drop.append(e["name"])
        rest = [e for e in entries if e["name"] not in set(drop)]
        if quota_per_class is not None:
            def present(e):
                h = np.asarray(e.get("class_hist", [0] * k)[:k], np.float64)
                return h / (int(e.get("pixels", 0)) or h.sum() or 1) >= presence
            for name in eviction_order(rest, policy, presence, k, len(rest)):
                counts = np.sum([present(e) for e in rest], axis=0)
                e = next(x for x in rest if x["name"] == name)
                p = present(e)
                if p.any() and np.all(counts[p] > quota_per_class):
                    drop.append(name)
                    rest.remove(e)
        total = sum(entry_bytes(e) for e in rest)
        for name in eviction_order(rest, policy, presence, k, len(rest)):
            over_n = max_samples is not None and len(rest) > max_samples
            over_b = max_bytes is not None and total > max_bytes
            if not (over_n or over_b):
                break
            e = next(x for x in rest if x["name"] == name)
            rest.remove(e)
            total -= entry_bytes(e)
            drop.append(name)
        freed = sum(entry_bytes(store.live[n]) for n in drop)
        if not dry_run:
            store.remove(drop, reason="prune")
        return {"removed": drop, "freed_bytes": int(freed), "kept": len(entries) - len(drop),
                "bytes": int(total), "dry_run": dry_run, "manifest": str(root / MANIFEST)}
