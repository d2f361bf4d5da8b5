"""Video-sequence datasets in their released layouts. Items are single frames, as every dataset::

    {"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W) (annotated frames only), "name": str}

and every sequence dataset has ``sequences() -> {seq_id: [item indices in frame order]}`` and
``key(i)`` (the frame's path, for flow caches). :class:`~pipa_edge.data.datasets.pairs.PairDataset`
turns any of them into ``(t, t-k)`` pairs.

* Cityscapes-Seq: ``leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``; the
  annotated frame (``_000019`` of each 30-frame snippet) has ``gtFine/<split>/<city>/<city>_<seq>_<frame>_
  gtFine_labelTrainIds.png`` (or ``_labelIds.png``). Sequence id = ``<city>_<seq>``.
* VIPER: ``<split>/img/<seq>/<seq>_<frame>.jpg|png`` + ``<split>/cls/<seq>/<seq>_<frame>.png``; ids map
  to the 15 VIPER→Cityscapes-Seq classes (``viper15``) with the DA-VSN/TPS table.
* SYNTHIA-Seq: ``<SEQ>/RGB/Stereo_Left/Omni_F/000000.png`` + ``<SEQ>/GT/LABELS/Stereo_Left/Omni_F/000000.png``
  (16-bit, class id in the first channel); ``root`` is one ``<SEQ>`` folder or a folder of them; ids map to
  ``synthia_seq12`` with the DA-VSN/TPS table (``classes: synthia_seq11`` drops bicycle).
* CamVid sequences: the CamVid layouts of :mod:`.camvid`; frames ``<seq>_<frame>.png`` grouped by the
  prefix before the last ``_`` and ordered by name (consecutive *annotated* frames).
* Frames folder: ``root/*.png`` (one sequence) or ``root/<seq>/*.png``; unlabelled.
* Video files: see :mod:`pipa_edge.data.datasets.video`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from pipa_edge.data.classes import CLASS_SETS, ClassSet
from pipa_edge.data.datasets.base import IMAGE_EXTS, Record, SegDataset, apply_lut, compose_lut, identity_lut, \
    list_images, read_label_raw, require_dir, table_lut
from pipa_edge.data.datasets.cityscapes import find_gtfine_label
from pipa_edge.errors import DataError

# DA-VSN / TPS tables (VIPER class ids and SYNTHIA-Seq class ids → their 15 / 12 evaluation classes)
VIPER_ID_TO_VIPER15: dict[int, int] = {3: 0, 4: 1, 9: 2, 11: 3, 13: 4, 14: 5, 7: 6, 8: 6, 6: 7, 2: 8, 20: 9, 24: 10,
                                       27: 11, 26: 12, 23: 13, 22: 14}
SYNTHIA_SEQ_ID_TO_SEQ12: dict[int, int] = {3: 0, 4: 1, 2: 2, 5: 3, 7: 4, 15: 5, 9: 6, 6: 7, 1: 8, 10: 9, 11: 10, 8: 11}
SYNTHIA_SEQ_CAMERA = ("Stereo_Left", "Omni_F")
CS_ANNOTATED_FRAME = 19


class SequenceDataset(SegDataset):
    """A :class:`SegDataset` whose records carry a sequence id and a frame order."""

    def __init__(self, root: Path, records: Sequence[Record], seqs: Sequence[str], classes: ClassSet,
                 raw_lut: np.ndarray, **kw):
        order = sorted(range(len(records)), key=lambda i: (seqs[i], records[i].name))
        limit = kw.pop("limit", None)
        records = [records[i] for i in order][:limit]
        self.seq_ids = [seqs[i] for i in order][:limit]
        super().__init__(root, records, classes, raw_lut, **kw)

    def sequences(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.seq_ids):
            out.setdefault(s, []).append(i)
        return out

    def key(self, i: int) -> str:
        return str(self.records[i].image)


class CityscapesSeqDataset(SequenceDataset):
    SUFFIX = "_leftImg8bit.png"

    def __init__(self, root: str | Path, split: str = "train", labels: bool = True, classes: ClassSet | None = None,
                 resize: Sequence[int] | None = None, limit: int | None = None):
        from pipa_edge.data.datasets.cityscapes import LABEL_ID_LUT

        root = Path(root)
        require_dir(root, "Cityscapes-Seq root")
        img_root = require_dir(root / "leftImg8bit_sequence" / split, f"Cityscapes-Seq split '{split}'")
        gt_root = root / "gtFine" / split
        records, seqs = [], []
        self._label_ids: set[str] = set()
        for city in sorted(p for p in img_root.iterdir() if p.is_dir()):
            for p in list_images(city, self.SUFFIX):
                base = p.name[: -len(self.SUFFIX)]
                parts = base.rsplit("_", 1)
                if len(parts) != 2 or not parts[1].isdigit():
                    raise DataError(f"{p}: expected <city>_<seq>_<frame>{self.SUFFIX}")
                lab, is_label_ids = find_gtfine_label(gt_root / city.name, base)
                if is_label_ids:
                    self._label_ids.add(base)
                records.append(Record(p, lab, base))
                seqs.append(parts[0])
        if not records:
            raise DataError(f"{img_root}: no *{self.SUFFIX} frames found in its city folders")
        cs19 = CLASS_SETS["cityscapes19"]
        self._train_lut, cls = compose_lut(identity_lut(cs19.num_classes), cs19, classes)
        self._id_lut, _ = compose_lut(LABEL_ID_LUT, cs19, classes)
        super().__init__(root, records, seqs, cls, self._train_lut, labels=labels, resize=resize, limit=limit)
        self.split = split

    def read_label(self, rec: Record) -> np.ndarray:
        return apply_lut(read_label_raw(rec.label), self._id_lut if rec.name in self._label_ids else self._train_lut)


class ViperDataset(SequenceDataset):
    def __init__(self, root: str | Path, split: str = "train", labels: bool = True, classes: ClassSet | None = None,
                 resize: Sequence[int] | None = None, limit: int | None = None):
        root = Path(root)
        require_dir(root, "VIPER root")
        img_root = require_dir(root / split / "img", f"VIPER split '{split}' images")
        cls_root = root / split / "cls"
        records, seqs = [], []
        for seq in sorted(p for p in img_root.iterdir() if p.is_dir()):
            for p in list_images(seq):
                lab = cls_root / seq.name / f"{p.stem}.png"
                if labels and cls_root.is_dir() and not lab.is_file():
                    raise DataError(f"{lab}: label missing for frame {p.name}")
                records.append(Record(p, lab if lab.is_file() else None, p.stem))
                seqs.append(seq.name)
        if not records:
            raise DataError(f"{img_root}: no frames found in its sequence folders")
        lut, cls = compose_lut(table_lut(VIPER_ID_TO_VIPER15), CLASS_SETS["viper15"], classes)
        super().__init__(root, records, seqs, cls, lut, labels=labels, resize=resize, limit=limit)
        self.split = split


class SynthiaSeqDataset(SequenceDataset):
    def __init__(self, root: str | Path, split: str = "train", labels: bool = True, classes: ClassSet | None = None,
                 resize: Sequence[int] | None = None, limit: int | None = None):
        root = Path(root)
        require_dir(root, "SYNTHIA-Seq root")
        seq_dirs = [root] if (root / "RGB").is_dir() else sorted(p for p in root.iterdir() if (p / "RGB").is_dir())
        if not seq_dirs:
            raise DataError(f"{root}: no SYNTHIA-Seq sequence (expected {root}/RGB or {root}/<SEQ>/RGB)")
        records, seqs = [], []
        for sd in seq_dirs:
            img_dir = require_dir(sd.joinpath("RGB", *SYNTHIA_SEQ_CAMERA), "SYNTHIA-Seq camera folder")
            lab_dir = sd.joinpath("GT", "LABELS", *SYNTHIA_SEQ_CAMERA)
            for p in list_images(img_dir):
                lab = lab_dir / f"{p.stem}.png"
                if labels and lab_dir.is_dir() and not lab.is_file():
                    raise DataError(f"{lab}: label missing for frame {p.name}")
                records.append(Record(p, lab if lab.is_file() else None, f"{sd.name}/{p.stem}"))
                seqs.append(sd.name)
        if not records:
            raise DataError(f"{root}: no SYNTHIA-Seq frames found")
        lut, cls = compose_lut(table_lut(SYNTHIA_SEQ_ID_TO_SEQ12), CLASS_SETS["synthia_seq12"], classes)
        super().__init__(root, records, seqs, cls, lut, labels=labels, resize=resize, limit=limit, label_channel=2)
        self.split = split


def _camvid_seq(name: str) -> str:
    m = re.match(r"^(.*)_[^_]*$", name)
    return m.group(1) if m else name


class CamVidSeqDataset(SequenceDataset):
    def __init__(self, root: str | Path, split: str = "train", labels: bool = True, classes: ClassSet | None = None,
                 resize: Sequence[int] | None = None, limit: int | None = None):
        from pipa_edge.data.datasets.camvid import camvid_records

        root = Path(root)
        records, lut, cls = camvid_records(root, split, labels, classes)
        super().__init__(root, records, [_camvid_seq(r.name) for r in records], cls, lut, labels=labels,
                         resize=resize, limit=limit)
        self.split = split


class FramesDataset(SequenceDataset):
    """Unlabelled frames: ``root/*`` images (one sequence) or ``root/<seq>/*`` (one per subfolder)."""

    def __init__(self, root: str | Path, classes: ClassSet, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        require_dir(root, "frames folder")
        records, seqs = [], []
        direct = list_images(root)
        folders = [(root.name, direct)] if direct else [
            (d.name, list_images(d)) for d in sorted(p for p in root.iterdir() if p.is_dir())]
        for seq, frames in folders:
            for p in frames:
                records.append(Record(p, None, f"{seq}/{p.stem}"))
                seqs.append(seq)
        if not records:
            raise DataError(f"{root}: no frames found (expected {'/'.join(IMAGE_EXTS)} files in it or its subfolders)")
        super().__init__(root, records, seqs, classes, identity_lut(classes.num_classes), labels=False,
                         resize=resize, limit=limit)


def build_sequence_dataset(cfg, classes: ClassSet | None):
    """``cfg`` a :class:`~pipa_edge.data.config.DatasetConfig` of a sequence type (single frames)."""
    root = Path(cfg.root).expanduser()
    common = dict(labels=cfg.labels, resize=cfg.resize, limit=cfg.limit)
    t = cfg.type
    if t == "cityscapes_seq":
        return CityscapesSeqDataset(root, cfg.split, classes=classes, **common)
    if t == "viper":
        return ViperDataset(root, cfg.split, classes=classes, **common)
    if t == "synthia_seq":
        return SynthiaSeqDataset(root, cfg.split, classes=classes, **common)
    if t == "camvid_seq":
        return CamVidSeqDataset(root, cfg.split, classes=classes, **common)
    if t == "frames":
        return FramesDataset(root, classes or CLASS_SETS["cityscapes19"], resize=cfg.resize, limit=cfg.limit)
    if t == "video":
        from pipa_edge.data.datasets.video import VideoDataset
        return VideoDataset(root, classes or CLASS_SETS["cityscapes19"], resize=cfg.resize, limit=cfg.limit)
    raise DataError(f"dataset {root}: '{t}' is not a sequence dataset type")
