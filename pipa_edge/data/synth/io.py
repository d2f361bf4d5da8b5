"""``generate()``: write the synthetic sim→real dataset (``pipa-edge data synth OUT``).

Layout::

    OUT/sim/images/00000.png   OUT/sim/labels/00000.png      (uint8 class index, 255 = ignore)
    OUT/real/images|labels/...
    OUT/sim_seq/<seq>/images|labels/000.png   OUT/real_seq/<seq>/images|labels/000.png
    OUT/meta.json   (classes, seed, counts, size, generator version, pixels per class and split)

Every item has its own random generator seeded by ``(seed, split, index, frame)``, so the output
is byte-identical for a seed whatever the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError, DataError

GENERATOR_VERSION = "1.0"
SPLITS = ("sim", "real", "sim_seq", "real_seq")
INCOMPLETE = ".synth_incomplete"
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def _write(path: Path, arr: np.ndarray) -> None:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), arr, _PNG):
        raise DataError(f"{path}: cannot write image")


def _task(args: tuple) -> tuple[str, np.ndarray, int]:
    """Render and write one still (``seq_len == 0``) or one whole sequence; returns a class histogram."""
    out, split, index, seq_len, H, W, seed = args
    from pipa_edge.data.synth.frame import render_frame
    from pipa_edge.data.synth.sequences import frame_rng, render_sequence, sequence_world
    from pipa_edge.data.synth.styles import get_style
    from pipa_edge.data.synth.world import sample_world

    hist = np.zeros(256, np.int64)
    out = Path(out)
    if seq_len == 0:
        world = sample_world(frame_rng(seed, split, index, 10**6), get_style(split), period=90.0, v_ego=0.5)
        img, lab = render_frame(world, 0, H, W, frame_rng(seed, split, index, 0))
        _write(out / split / "images" / f"{index:05d}.png", img)
        _write(out / split / "labels" / f"{index:05d}.png", lab)
        hist += np.bincount(lab.ravel(), minlength=256)
        return split, hist, 1
    domain = split[:-4]
    folder = out / split / f"{index:04d}"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    world = sequence_world(domain, seed, split, index)
    for t, (img, lab) in enumerate(render_sequence(world, seq_len, H, W, seed, split, index)):
        _write(folder / "images" / f"{t:03d}.png", img)
        _write(folder / "labels" / f"{t:03d}.png", lab)
        hist += np.bincount(lab.ravel(), minlength=256)
    return split, hist, seq_len


def _prepare(out: Path) -> None:
    """Create ``out``; clear the split folders of an earlier synth run there, refuse foreign folders."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    meta, marker = out / "meta.json", out / INCOMPLETE
    if out.is_dir() and any(out.iterdir()):
        if not meta.is_file() and not marker.is_file():
            raise DataError(f"{out}: folder is not empty and holds no synthetic dataset (meta.json); "
                            "refusing to write into it", hint="pick a new or empty folder")
        for s in SPLITS:
            if (out / s).is_dir():
                shutil.rmtree(out / s)
        meta.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    # mark the folder as ours at once, so an interrupted run can be overwritten by the next one;
    # meta.json appears only when the dataset is complete
    marker.write_text("pipa-edge synth: generation in progress or interrupted\n")


def generate(out: Path, n_sim: int, n_real: int, n_seq: int = 0, seq_len: int = 0, size=(256, 512), seed: int = 0,
             progress: bool = True, workers: int | None = None) -> dict:
    """Write ``n_sim`` sim and ``n_real`` real-style stills and ``n_seq`` sequences of ``seq_len``
    frames per domain under ``out``; returns the metadata also written to ``out/meta.json``.

    ``workers``: processes (default: 2 when there are at least 48 frames and 2+ CPUs, else 1).
    """
    out = Path(out)
    H, W = (int(v) for v in size)
    if min(n_sim, n_real, n_seq, seq_len) < 0:
        raise ConfigError("synth: counts must be >= 0 (--n-sim/--n-real/--n-seq/--seq-len)")
    if n_seq > 0 and seq_len < 2:
        raise ConfigError(f"synth: --seq-len must be >= 2 when --n-seq is {n_seq} (got {seq_len})")
    if not (32 <= H <= 4096 and 32 <= W <= 4096):
        raise ConfigError(f"synth: --size {H} {W} out of range (32-4096 each)")
    _prepare(out)
    for s, n in (("sim", n_sim), ("real", n_real)):
        for sub in ("images", "labels"):
            (out / s / sub).mkdir(parents=True, exist_ok=True)
    for s in ("sim_seq", "real_seq"):
        if n_seq:
            (out / s).mkdir(exist_ok=True)
    seq_len = seq_len if n_seq else 0
    tasks = [(str(out), s, i, 0, H, W, int(seed)) for s, n in (("sim", n_sim), ("real", n_real)) for i in range(n)]
    tasks += [(str(out), s, i, seq_len, H, W, int(seed)) for i in range(n_seq) for s in ("sim_seq", "real_seq")]
    total = n_sim + n_real + 2 * n_seq * seq_len
    if workers is None:
        workers = 2 if total >= 48 and (os.cpu_count() or 1) >= 2 else 1
    hists = {s: np.zeros(256, np.int64) for s in SPLITS}
    from pipa_edge.log import progress as bar_ctx

    with bar_ctx("synth", total, disable=not progress) as bar:
        if workers <= 1:
            results = map(_task, tasks)
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            results = pool.map(_task, tasks, chunksize=4)
        try:
            for split, hist, n in results:
                hists[split] += hist
                bar.advance(n, info=split)
        finally:
            if workers > 1:
                pool.shutdown()
    counts = {"sim": n_sim, "real": n_real, "sim_seq": n_seq, "real_seq": n_seq}
    meta = {"generator": "pipa-edge synth", "version": GENERATOR_VERSION, "seed": int(seed), "size": [H, W],
            "counts": counts, "seq_len": seq_len, "frames": total, "classes": SYNTH11.to_dict(),
            "class_pixels": {s: hists[s][: SYNTH11.num_classes].tolist() for s in SPLITS if hists[s].any()}}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / INCOMPLETE).unlink(missing_ok=True)
    return meta


def dataset_info(root: Path) -> dict:
    """Counts and class histogram (from the label files) per split of a synthetic dataset folder."""
    from pipa_edge.data.synth.dataset import SynthDataset

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found", hint=f"generate it with: pipa-edge data synth {root}")
    meta = {}
    if (root / "meta.json").is_file():
        try:
            meta = json.loads((root / "meta.json").read_text())
        except ValueError:
            raise DataError(f"{root / 'meta.json'}: not valid JSON") from None
    splits = {}
    classes = None
    for s in SPLITS:
        if not (root / s).is_dir():
            continue
        ds = SynthDataset(root, s)
        classes = ds.classes
        hist = np.zeros(256, np.int64)
        for i in range(len(ds)):
            lab = cv2.imread(str(ds.label_path(i)), cv2.IMREAD_UNCHANGED)
            if lab is None:
                raise DataError(f"{ds.label_path(i)}: cannot read label")
            hist += np.bincount(ds._lut[lab].ravel(), minlength=256)
        k = ds.classes.num_classes
        tot = max(int(hist[:k].sum()), 1)
        splits[s] = {"items": len(ds.sequences()), "frames": len(ds), "class_pixels": hist[:k].tolist(),
                     "class_fraction": (hist[:k] / tot).tolist()}
    if not splits:
        raise DataError(f"{root}: no synthetic splits ({', '.join(SPLITS)}) found",
                        hint=f"generate them with: pipa-edge data synth {root}")
    return {"root": str(root), "classes": list(classes.names), "splits": splits,
            **{k: meta[k] for k in ("version", "seed", "size") if k in meta}}
