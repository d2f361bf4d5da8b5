"""Visualisation of labels on frames: overlay (alpha blend), mask only, side by side; class legend."""

from __future__ import annotations

import numpy as np

from pipa_edge.data.classes import ClassSet

VIZ_MODES = ("overlay", "mask", "side")


def upsample_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` integer labels → ``(H, W)`` by nearest neighbour (cv2, exact for integers)."""
    import cv2

    h, w = hw
    if labels.shape == (h, w):
        return labels
    return cv2.resize(labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.int32, copy=False), (w, h),
                      interpolation=cv2.INTER_NEAREST)


class Visualizer:
    """``render(frame_rgb (H,W,3) uint8, labels (h,w) int) -> (H, W or 2W, 3) uint8`` RGB."""

    def __init__(self, classes: ClassSet, mode: str = "overlay", alpha: float = 0.5, legend: bool = True,
                 present_only: bool = True):
        if mode not in VIZ_MODES:
            raise ValueError(f"unknown visualisation '{mode}' (known: {', '.join(VIZ_MODES)})")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
        self.classes, self.mode, self.alpha, self.legend = classes, mode, float(alpha), legend
        self.present_only = present_only
        self._pal = classes.palette_array()
        self._legend_cache: dict = {}

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        h, w = hw
        return (h, 2 * w) if self.mode == "side" else (h, w)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        lab = labels.astype(np.int64, copy=False)
        lab = np.where((lab >= 0) & (lab < self.classes.num_classes), lab, self.classes.num_classes)
        return self._pal[lab]

    def render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        lab = upsample_labels(labels, (h, w))
        color = self.colorize(lab)
        if self.mode == "mask":
            out = color
        else:
            a = self.alpha
            blend = (frame.astype(np.float32) * (1.0 - a) + color.astype(np.float32) * a + 0.5).astype(np.uint8)
            out = blend if self.mode == "overlay" else np.concatenate([frame, blend], axis=1)
        out = np.ascontiguousarray(out)
        if self.legend:
            present = np.unique(lab) if self.present_only else np.arange(self.classes.num_classes)
            self.draw_legend(out, [int(i) for i in present if 0 <= i < self.classes.num_classes])
        return out

    def draw_legend(self, img: np.ndarray, class_ids: list[int]) -> None:
        """Colour box + class name per class, top-left, on a dark translucent panel (in place)."""
        import cv2

        if not class_ids:
            return
        h = img.shape[0]
        scale = max(0.35, min(0.6, h / 900.0))
        row = int(22 * scale / 0.5)
        box = max(6, row - 6)
        width = int(130 * scale / 0.5)
        rows = class_ids[: max(1, (h - 8) // row)]
        y1, x1 = 4 + row * len(rows) + 4, min(img.shape[1], 4 + width)
        panel = img[4:y1, 4:x1]
        panel[:] = (panel.astype(np.uint16) * 2 // 5).astype(np.uint8)
        for i, c in enumerate(rows):
            y = 8 + i * row
            colour = tuple(int(v) for v in self._pal[c])
            cv2.rectangle(img, (8, y), (8 + box, y + box), colour, thickness=-1)
            cv2.putText(img, self.classes.names[c], (14 + box, y + box - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
