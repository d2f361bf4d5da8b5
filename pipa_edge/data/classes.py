"""Class sets: names, palette and ignore index.

Every dataset, model head, metric, export sidecar and overlay takes its classes from a
:class:`ClassSet`; nothing in the project counts to 19 by itself. Subsets used by the standard
benchmarks (SYNTHIA-16/13, VIPER-15, SYNTHIA-Seq-12/11) are derived from Cityscapes-19 so their
names and colours always agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipa_edge.errors import ConfigError

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassSet:
    """An ordered list of classes; index ``i`` in labels/logits is ``names[i]``."""

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    description: str = ""
    _lookup: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise ValueError(f"class set {self.name}: {len(self.names)} names but {len(self.palette)} colours")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class set {self.name}: duplicate class names")
        if 0 <= self.ignore_index < len(self.names):
            raise ValueError(f"class set {self.name}: ignore index {self.ignore_index} is a class index")
        self._lookup.update({n: i for i, n in enumerate(self.names)})

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self._lookup[name]
        except KeyError:
            raise KeyError(f"class set {self.name} has no class '{name}'") from None

    def palette_array(self) -> np.ndarray:
        """``(num_classes + 1, 3) uint8``; the last row (black) colours ignore pixels."""
        pal = np.zeros((self.num_classes + 1, 3), np.uint8)
        pal[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return pal

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """``(H, W)`` integer labels → ``(H, W, 3) uint8`` RGB; ignore/out-of-range pixels black."""
        lab = np.asarray(label).astype(np.int64)
        lab = np.where((lab >= 0) & (lab < self.num_classes), lab, self.num_classes)
        return self.palette_array()[lab]

    def subset(self, name: str, keep: Sequence[str], description: str = "") -> "ClassSet":
        """A new class set with the listed classes of this one, in the given order."""
        idx = [self.index(n) for n in keep]
        return ClassSet(name, tuple(keep), tuple(self.palette[i] for i in idx), self.ignore_index, description)

    def mapping_to(self, other: "ClassSet") -> np.ndarray:
        """LUT ``(256,) uint8`` mapping this set's indices to ``other``'s by name (missing → ignore)."""
        lut = np.full(256, other.ignore_index, np.uint8)
        for i, n in enumerate(self.names):
            if n in other._lookup:
                lut[i] = other._lookup[n]
        return lut

    def to_dict(self) -> dict:
        return {"name": self.name, "names": list(self.names), "palette": [list(c) for c in self.palette],
                "ignore_index": self.ignore_index, "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassSet":
        try:
            return cls(str(d["name"]), tuple(d["names"]), tuple(tuple(int(v) for v in c) for c in d["palette"]),
                       int(d.get("ignore_index", IGNORE_INDEX)), str(d.get("description", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"class set description is invalid: {e}") from None


CITYSCAPES19 = ClassSet(
    "cityscapes19",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
     "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
     (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
     (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    description="Cityscapes 19 evaluation classes (trainIds 0-18)",
)

SYNTHIA16 = CITYSCAPES19.subset(
    "synthia16",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "sky",
     "person", "rider", "car", "bus", "motorcycle", "bicycle"),
    "SYNTHIA→Cityscapes 16 classes (no terrain, truck, train)")

SYNTHIA13 = CITYSCAPES19.subset(
    "synthia13",
    ("road", "sidewalk", "building", "traffic light", "traffic sign", "vegetation", "sky", "person", "rider", "car",
     "bus", "motorcycle", "bicycle"),
    "SYNTHIA→Cityscapes 13 classes (the 16 without wall, fence, pole)")

VIPER15 = CITYSCAPES19.subset(
    "viper15",
    ("road", "sidewalk", "building", "fence", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
     "person", "car", "truck", "bus", "motorcycle", "bicycle"),
    "VIPER→Cityscapes-Seq 15 classes (DA-VSN/TPS protocol)")

SYNTHIA_SEQ12 = CITYSCAPES19.subset(
    "synthia_seq12",
    ("road", "sidewalk", "building", "pole", "traffic light", "traffic sign", "vegetation", "sky", "person", "rider",
     "car", "bicycle"),
    "SYNTHIA-Seq→Cityscapes-Seq 12 classes")

SYNTHIA_SEQ11 = CITYSCAPES19.subset(
    "synthia_seq11",
    ("road", "sidewalk", "building", "pole", "traffic light", "traffic sign", "vegetation", "sky", "person", "rider",
     "car"),
    "SYNTHIA-Seq→Cityscapes-Seq 11 classes (DA-VSN/TPS evaluation)")

CAMVID11 = ClassSet(
    "camvid11",
    ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
     (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
    description="CamVid 11 classes as packaged by SegNet (index 11 = void → ignore)",
)

SYNTH11 = CITYSCAPES19.subset(
    "synth11",
    ("road", "sidewalk", "building", "fence", "pole", "traffic sign", "vegetation", "terrain", "sky", "person",
     "car"),
    "classes of the embedded procedural sim→real generator")

CLASS_SETS: dict[str, ClassSet] = {c.name: c for c in (
    CITYSCAPES19, SYNTHIA16, SYNTHIA13, VIPER15, SYNTHIA_SEQ12, SYNTHIA_SEQ11, CAMVID11, SYNTH11)}


def get_class_set(name: str) -> ClassSet:
    """Look up a registered class set by name (``cityscapes19``, ``camvid11``, ``synth11``, ...)."""
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise ConfigError(f"unknown class set '{name}' (known: {', '.join(CLASS_SETS)})") from None
