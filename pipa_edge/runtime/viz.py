"""Visualisation of labels on frames: overlay (alpha blend), mask only, side by side; class legend."""

from __future__ import annotations

import numpy as np

from pipa_edge.data.classes import ClassSet

VIZ_MODES = ("overlay", "mask", "side")


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
        """Colour at label resolution, upsample the colours (nearest), blend with cv2 (SIMD)."""
        import cv2

        h, w = frame.shape[:2]
        color = self.colorize(labels)
        if color.shape[:2] != (h, w):
            color = cv2.resize(color, (w, h), interpolation=cv2.INTER_NEAREST)
        if self.mode == "mask":
            out = np.ascontiguousarray(color)
        else:
            a = self.alpha
            out = cv2.addWeighted(np.ascontiguousarray(frame), 1.0 - a, color, a, 0.0)
        if self.legend:
            k = self.classes.num_classes
            if self.present_only:
                lab = labels.ravel()
                present = np.flatnonzero(np.bincount(lab[(lab >= 0) & (lab < k)].astype(np.int64), minlength=k))
            else:
                present = np.arange(k)
            self.draw_legend(out, [int(i) for i in present])  # on the segmented view
        if self.mode == "side":
            out = np.concatenate([frame, out], axis=1)
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
