"""Reader of a folder written by :func:`pipa_edge.data.synth.generate` (``pipa-edge data synth``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipa_edge.data.classes import SYNTH11, ClassSet, get_class_set
from pipa_edge.errors import DataError

SPLITS = ("sim", "real", "sim_seq", "real_seq")


def _read(path: Path, flags: int) -> np.ndarray:
    arr = cv2.imread(str(path), flags)
    if arr is None:
        raise DataError(f"{path}: cannot read (missing or corrupt)")
    return arr


class SynthDataset:
    """Items ``{"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W), "name": str}``.

    ``split``: ``sim``/``real`` (stills, name ``"00012"``) or ``sim_seq``/``real_seq`` (every frame
    of every sequence, name ``"0003/007"``, in sequence then frame order). With ``labels=False``
    items have no ``"label"``. ``classes`` (a :class:`ClassSet` or a registered name) remaps the
    synth11 labels by class name (classes it lacks become ignore).
    """

    def __init__(self, root: Path, split: str, labels: bool = True, classes: ClassSet | str | None = None):
        self.root = Path(root)
        hint = f"generate it with: pipa-edge data synth {self.root}"
        if split not in SPLITS:
            raise DataError(f"{self.root}: unknown synthetic split '{split}' (known: {', '.join(SPLITS)})")
        folder = self.root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: synthetic split '{split}' not found", hint=hint)
        self.split, self.labels = split, bool(labels)
        src = SYNTH11
        meta = self.root / "meta.json"
        if meta.is_file():
            try:
                src = ClassSet.from_dict(json.loads(meta.read_text())["classes"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{meta}: not a valid synthetic dataset description", hint=hint) from None
        if isinstance(classes, str):
            classes = get_class_set(classes)
        self.classes: ClassSet = classes if classes is not None else src
        self._lut = src.mapping_to(self.classes)
        self._lut[self.classes.ignore_index] = self.classes.ignore_index
        if split.endswith("_seq"):
            pairs = [(f"{seq.name}/{p.stem}", p) for seq in sorted(d for d in folder.iterdir() if d.is_dir())
                     for p in sorted((seq / "images").glob("*.png"))]
        else:
            pairs = [(p.stem, p) for p in sorted((folder / "images").glob("*.png"))]
        self.names = [n for n, _ in pairs]
        self.images = [p for _, p in pairs]

    def __len__(self) -> int:
        return len(self.images)

    def label_path(self, i: int) -> Path:
        p = self.images[i]
        return p.parent.parent / "labels" / p.name

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        img = cv2.cvtColor(_read(self.images[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        item = {"image": img, "name": self.names[i]}
        if self.labels:
            lab = _read(self.label_path(i), cv2.IMREAD_UNCHANGED)
            if lab.ndim != 2 or lab.shape != img.shape[:2]:
                raise DataError(f"{self.label_path(i)}: label shape {lab.shape} does not match its image "
                                f"{img.shape[:2]}")
            item["label"] = self._lut[lab]
        return item

    def sequences(self) -> dict[str, list[int]]:
        """``{seq_id: [item indices in frame order]}`` (``*_seq`` splits; one entry per still otherwise)."""
        out: dict[str, list[int]] = {}
        for i, n in enumerate(self.names):
            out.setdefault(n.split("/")[0], []).append(i)
        return out
