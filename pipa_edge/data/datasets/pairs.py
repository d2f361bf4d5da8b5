"""Frame pairs ``(t, t-k)`` from any sequence dataset, and a training transform that treats both
frames (and the flow between them) with the same geometry.

:class:`PairDataset` items::

    {"image": uint8 (H, W, 3) frame t, "image_prev": uint8 (H, W, 3) frame t-k,
     "label": uint8 (H, W) (frame t, when it has one), "flow": float32 (H, W, 2) t → t-k and
     "flow_valid": bool (H, W) (when a flow provider is given), "name": str (frame t)}

A pair exists for every frame with at least ``k`` earlier frames in its sequence.
:class:`PairTrainTransform` draws one scale, crop box, flip and colour jitter and applies them to
both frames, the label and the flow (vectors rescaled, x negated on flips, validity cropped and
re-checked against the crop), returning torch tensors (``image``/``image_prev`` uint8 (3, H, W),
``flow`` float32 (2, H, W), ``flow_valid`` bool (H, W)).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from pipa_edge.data.classes import IGNORE_INDEX
from pipa_edge.data.flow import in_frame, resize_flow
from pipa_edge.data.transforms import TrainTransform, TransformConfig, _crop_box, _resize, color_jitter, \
    pad_to, to_tensors
from pipa_edge.errors import DataError


def dataset_sequences(ds) -> dict[str, list[int]]:
    """``{seq: [indices in frame order]}`` of a sequence dataset (or a limited view of one)."""
    if hasattr(ds, "sequences"):
        return ds.sequences()
    inner = getattr(ds, "dataset", None)
    if inner is not None and hasattr(inner, "sequences"):
        n = len(ds)
        return {s: [i for i in idx if i < n] for s, idx in inner.sequences().items()}
    raise DataError(f"{getattr(ds, 'root', ds)}: dataset has no sequences; pairs need a sequence type "
                    "(cityscapes_seq, viper, synthia_seq, camvid_seq, frames, video, synth *_seq)")


def dataset_key(ds, i: int) -> str:
    """A stable key of item ``i`` (its file path) for flow caches."""
    for d in (ds, getattr(ds, "dataset", None)):
        if d is None:
            continue
        if hasattr(d, "key"):
            return d.key(i)
        if hasattr(d, "images"):
            return str(d.images[i])
    return str(i)


class PairDataset:
    yields_pairs = True

    def __init__(self, base, offset: int = 1, flow=None):
        if offset < 1:
            raise DataError(f"{getattr(base, 'root', '')}: key 'pair_offset': must be >= 1, got {offset}")
        self.base, self.offset, self.flow = base, int(offset), flow
        self.classes = base.classes
        self.root = Path(getattr(base, "root", "."))
        self.pairs = [(idx[j], idx[j - offset]) for idx in dataset_sequences(base).values()
                      for j in range(offset, len(idx))]
        if not self.pairs:
            raise DataError(f"{self.root}: no sequence has more than {offset} frame(s): no (t, t-{offset}) pairs")

    @property
    def has_labels(self) -> bool:
        return bool(getattr(self.base, "has_labels", False))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        it, ip = self.pairs[i]
        a, b = self.base[it], self.base[ip]
        out = {"image": a["image"], "image_prev": b["image"], "name": a["name"]}
        if "label" in a:
            out["label"] = a["label"]
        if self.flow is not None:
            flow, valid = self.flow(a["image"], b["image"], dataset_key(self.base, it), dataset_key(self.base, ip))
            out["flow"], out["flow_valid"] = flow.astype(np.float32), valid.astype(bool)
        return out


class PairTrainTransform:
    """:class:`~pipa_edge.data.transforms.TrainTransform` for pairs (identical geometry and colour)."""

    def __init__(self, cfg: TransformConfig | None = None):
        self.cfg = cfg or TransformConfig()
        self.single = TrainTransform(self.cfg)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if "image_prev" not in sample:
            return self.single(sample, rng)
        cfg = self.cfg
        image, prev, label = sample["image"], sample["image_prev"], sample.get("label")
        flow, valid = sample.get("flow"), sample.get("flow_valid")
        if prev.shape[:2] != image.shape[:2]:
            raise DataError(f"{sample.get('name')}: frames t {image.shape[:2]} and t-k {prev.shape[:2]} differ")
        bh, bw = cfg.base_size if cfg.base_size is not None else image.shape[:2]
        s = float(rng.uniform(*cfg.scale_range))
        h, w = max(1, int(round(bh * s))), max(1, int(round(bw * s)))
        image, label = _resize(image, label, h, w)
        prev, _ = _resize(prev, None, h, w)
        if flow is not None:
            flow = resize_flow(flow, (h, w))
            valid = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        ch, cw = int(cfg.crop_size[0]), int(cfg.crop_size[1])
        y, x = _crop_box(image.shape[:2], (ch, cw), rng)
        if cfg.cat_max_ratio < 1.0 and label is not None:  # the mmseg re-crop of TrainTransform
            for _ in range(10):
                cnt = np.bincount(label[y:y + ch, x:x + cw].ravel(), minlength=256)
                cnt[IGNORE_INDEX] = 0
                cnt = cnt[cnt > 0]
                if len(cnt) > 1 and cnt.max() / cnt.sum() < cfg.cat_max_ratio:
                    break
                y, x = _crop_box(image.shape[:2], (ch, cw), rng)
        sl = np.s_[y:y + ch, x:x + cw]
        image, prev = image[sl], prev[sl]
        label = label[sl] if label is not None else None
        image, label = pad_to(image, label, (ch, cw))
        prev, _ = pad_to(prev, None, (ch, cw))
        if flow is not None:
            fh, fw = flow[sl].shape[:2]
            f = np.zeros((max(ch, fh), max(cw, fw), 2), np.float32)
            v = np.zeros(f.shape[:2], bool)
            f[:fh, :fw], v[:fh, :fw] = flow[sl], valid[sl]
            flow, valid = f, v
        if rng.random() < cfg.hflip:
            image, prev = image[:, ::-1], prev[:, ::-1]
            label = label[:, ::-1] if label is not None else None
            if flow is not None:
                flow = flow[:, ::-1] * np.array([-1.0, 1.0], np.float32)
                valid = valid[:, ::-1]
        if cfg.jitter_enabled and rng.random() < cfg.jitter_prob:
            state = rng.bit_generator.state
            image = color_jitter(image, cfg, rng)
            twin = np.random.Generator(type(rng.bit_generator)())
            twin.bit_generator.state = state
            prev = color_jitter(prev, cfg, twin)
        out = to_tensors(image, label, sample.get("name", ""))
        out["image_prev"] = torch.from_numpy(np.ascontiguousarray(prev.transpose(2, 0, 1)))
        if flow is not None:
            valid = valid & in_frame(flow)  # the counterpart must lie inside the (same) crop
            out["flow"] = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))
            out["flow_valid"] = torch.from_numpy(np.ascontiguousarray(valid))
        return out

    def __repr__(self) -> str:
        return f"PairTrainTransform({self.cfg!r})"
