"""``pipa-edge eval CKPT --video --data SPEC`` as a Python API: :func:`evaluate_video`.

For every sequence of a sequence dataset (``video:clip.mp4``, ``frames:DIR``, ``cityscapes_seq:ROOT:val``,
``synth:DIR:real_seq``, ...) the model predicts each frame in order; consecutive frames are
compared through OpenCV DIS flow (t+1 → t, forward-backward occlusion mask) to give temporal
consistency (TC) and the label flip rate (:mod:`pipa_edge.train.video_metrics`); frames with labels
add to the mIoU. Writes ``<out>/<name>_video.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipa_edge.errors import ConfigError
from pipa_edge.log import ok, progress, stage

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _spec(spec):
    """A bare video path is ``video:PATH``."""
    if isinstance(spec, str) and ":" not in spec and spec.lower().endswith(VIDEO_SUFFIXES):
        return f"video:{spec}"
    return spec


@torch.no_grad()
def evaluate_sequences(model, dataset, device: torch.device | str = "cpu", flow: str = "dis",
                       dis_preset: str = "medium", max_frames: int | None = None, desc: str = "video",
                       show_progress: bool = True) -> dict:
    """TC / flip rate (/ mIoU where labelled) of ``model`` on a sequence dataset (raw items, uint8 HWC)."""
    from pipa_edge.data.flow import DISFlow
    from pipa_edge.data.datasets.pairs import dataset_sequences
    from pipa_edge.train.evaluate import label_lut
    from pipa_edge.metrics import summarize
    from pipa_edge.train.metrics import ConfusionMeter
    from pipa_edge.train.video_metrics import VideoMeter

    device = torch.device(device)
    classes = model.classes
    lut = label_lut(getattr(dataset, "classes", None), classes)
    meter = VideoMeter(classes.num_classes)
    cm = ConfusionMeter(classes.num_classes, classes.ignore_index)
    provider = DISFlow(dis_preset) if flow == "dis" else None
    seqs = dataset_sequences(dataset)
    total = sum(len(v) for v in seqs.values()) if max_frames is None else min(
        max_frames, sum(len(v) for v in seqs.values()))
    was_training = model.training
    model.eval().to(device)
    n_frames, n_lab, per_seq = 0, 0, {}
    try:
        with progress(desc, total=total, disable=not show_progress) as bar:
            for seq, idx in seqs.items():
                prev_img = prev_pred = None
                before = len(meter.tc)
                for i in idx:
                    if max_frames is not None and n_frames >= max_frames:
                        break
                    item = dataset[i]
                    img = np.ascontiguousarray(item["image"])
                    x = torch.from_numpy(img.transpose(2, 0, 1)).unsqueeze(0).to(device)
                    pred = model(model.normalize(x)).argmax(1)[0].cpu().numpy().astype(np.int32)
                    if "label" in item:
                        lab = torch.from_numpy(np.asarray(item["label"]).astype(np.int64))
                        if lut is not None:
                            lab = lut[lab.clamp(0, 255)]
                        cm.update(torch.from_numpy(pred).long().unsqueeze(0), lab.unsqueeze(0))
                        n_lab += 1
                    if prev_pred is not None:
                        if provider is None:
                            meter.update(prev_pred, pred)
                        else:
                            f, v = provider(img, prev_img)  # t+1 → t
                            meter.update(prev_pred, pred, f, v)
                    prev_img, prev_pred = img, pred
                    n_frames += 1
                    bar.advance(1)
                if len(meter.tc) > before:
                    per_seq[seq] = {"tc": float(np.mean(meter.tc[before:])), "flip_rate": float(np.mean(meter.flip[before:])),
                                    "pairs": len(meter.tc) - before}
    finally:
        model.train(was_training)
    out = meter.summary()
    out.update(frames=n_frames, sequences=len(per_seq), labelled_frames=n_lab, flow=flow, per_sequence=per_seq)
    if n_lab:
        s = summarize(cm.matrix(), classes.names)
        out.update(miou=s["miou"], per_class_iou=s["per_class_iou"])
    else:
        out["miou"] = None
    return out


def evaluate_video(ckpt: str | Path, data: Sequence[str], out_dir: str | Path, imgsz: Sequence[int] | None = None,
                   device: str = "auto", limit: int | None = None, flow: str = "dis", dis_preset: str = "medium",
                   show_progress: bool = True) -> list[dict]:
    """Score a checkpoint's temporal stability on each sequence dataset; returns the reports."""
    from pipa_edge.data.build import build_dataset
    from pipa_edge.data.classes import CLASS_SETS
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.train.dist import pick_device
    from pipa_edge.train.eval_api import data_name, parse_data_spec

    if not data:
        raise ConfigError("--data: give at least one video / sequence dataset")
    if flow not in ("dis", "none"):
        raise ConfigError(f"--flow '{flow}': expected dis or none")
    dev = pick_device(device)
    model = load_segmenter(ckpt).to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for spec in data:
        cfg = parse_data_spec(_spec(spec), imgsz, None)
        if cfg.classes is None and cfg.type in ("frames", "video") and model.classes.name in CLASS_SETS:
            cfg = cfg.model_copy(update={"classes": model.classes.name})
        ds = build_dataset(cfg)
        name = data_name(cfg)
        stage("eval", f"{Path(ckpt).name} on {name}: {len(ds)} frames, temporal metrics (flow: {flow}), {dev}")
        rep = evaluate_sequences(model, ds, dev, flow, dis_preset, limit, desc=f"video {name}",
                                 show_progress=show_progress)
        rep.update(checkpoint=str(ckpt), data=cfg.model_dump(mode="json"), arch=model.arch)
        path = out / f"{name}_video.json"
        rep["json"] = str(path)
        path.write_text(json.dumps(rep, indent=2))
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
        ok("eval", f"{name}: TC {fmt(rep['tc'])}%  flip rate {fmt(rep['flip_rate'])}%  mIoU {fmt(rep['miou'])}  "
                   f"({rep['frames']} frames, {rep['pairs']} pairs) → {path}")
        reports.append(rep)
    return reports
