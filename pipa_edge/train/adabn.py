"""Re-estimate a saved checkpoint's BatchNorm statistics on unlabelled images (AdaBN), no training.

``pipa-edge adabn CKPT --data SPEC [--data SPEC ...] --imgsz H W`` (:func:`adabn_checkpoint`) loads
the plain segmenter, replaces every BN layer's running mean / variance by the average batch
statistics of its final weights on up to ``num_images`` whole images (:func:`~pipa_edge.train.
precise_bn.recompute_bn_stats`), and writes a plain segmenter checkpoint (``kind: adabn``; from a
``final.pt`` or a training state ``last.pt`` alike): the same weights, new statistics, the input's
config / iteration / method name, its metrics as ``metrics_before_adabn``, and a ``bn_stats`` record
of where the statistics came from. Use it

- on frames of the deployment domain (a folder, a video file, an on-device collection written by
  ``pipa-edge run --collect``) to adapt a deployed model's normalisation without labels or training
  (AdaBN, Li et al. 2016: the source-only CamVid model goes 16.6 → 23.6 mIoU on dusk),
- on an adapted checkpoint trained without ``precise_bn`` (+1.5 on CamVid for mean teacher and
  PiPa++ alike, docs/benchmarks.md "Precise BN").

The images should have the size the model will run at (``--imgsz``): on CamVid, statistics of
half-size images cost 3–4 mIoU against whole eval-size ones. A model without BatchNorm layers is
refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch.utils.data import ConcatDataset

from pipa_edge.errors import ConfigError, DataError, ModelFileError

__all__ = ["adabn_checkpoint", "default_out_path"]


def default_out_path(ckpt: str | Path) -> Path:
    """``runs/x/final.pt`` → ``runs/x/final_adabn.pt``."""
    p = Path(ckpt)
    return p.with_name(f"{p.stem}_adabn{p.suffix or '.pt'}")


def _image_sets(data: Sequence, imgsz, classes: str):
    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.train.eval_api import data_name, parse_data_spec
    from pipa_edge.train.video_eval import _spec as video_spec

    sets = []
    for spec in data:
        cfg = parse_data_spec(video_spec(spec), imgsz)  # a bare clip.mp4 = video:clip.mp4, as in `eval --video`
        update = {"labels": False, "pair_offset": None, "flow": "none"}  # single whole images, no labels
        if cfg.classes is None:
            update["classes"] = classes
        cfg = cfg.model_copy(update=update)
        ds = build_eval_dataset(cfg)
        if len(ds) == 0:
            raise DataError(f"--data '{spec}': no images found under {cfg.root}")
        sets.append((data_name(cfg), cfg, ds))
    return sets


def adabn_checkpoint(ckpt: str | Path, data: Sequence, out: str | Path | None = None, *,
                     imgsz: Sequence[int] | None = None, num_images: int = 200, batch_size: int = 8,
                     seed: int = 0, device: str = "auto", evaluate_on: Sequence = (),
                     show_progress: bool = True) -> dict:
    """Write ``out`` (default :func:`default_out_path`) with BN statistics re-estimated on ``data``.

    ``data``: dataset specs as for ``pipa-edge eval`` (``TYPE:ROOT[:SPLIT]`` or a YAML file; labels
    are not read). ``evaluate_on``: labelled specs scored before and after. Returns a report with
    ``out``, ``images``, ``batches`` and, per evaluation set, ``miou_before`` / ``miou_after``.
    """
    from pipa_edge.models.io import atomic_torch_save, read_checkpoint, segmenter_entry, segmenter_from_entry
    from pipa_edge.train.dist import pick_device
    from pipa_edge.train.precise_bn import ImageSizeMismatch, bn_layers, precise_bn_images, recompute_bn_stats

    if num_images < 2:
        raise ConfigError(f"--num-images {num_images}: need at least 2 images")
    if batch_size < 2:
        raise ConfigError(f"--batch-size {batch_size}: need at least 2 images per batch (one image's "
                          "statistics are too noisy)")
    if not data:
        raise ConfigError("--data: give at least one image source to take the statistics from")
    src = Path(ckpt)
    dst = Path(out) if out is not None else default_out_path(src)
    if dst.resolve() == src.resolve():
        raise ConfigError(f"--out {dst}: refusing to overwrite the input checkpoint; choose another path")
    obj = read_checkpoint(src)
    model = segmenter_from_entry(obj["segmenter"], where=str(src))
    if not bn_layers(model):
        raise ModelFileError(f"{src}: model '{model.arch}' has no BatchNorm layers; nothing to re-estimate")
    dev = pick_device(device)
    model = model.to(dev)
    sets = _image_sets(data, imgsz, model.classes.name)
    total = sum(len(ds) for _, _, ds in sets)
    if min(num_images, total) < batch_size:
        raise DataError(f"--data: {total} image(s) in {', '.join(n for n, _, _ in sets)}; need at least "
                        f"--batch-size {batch_size}")
    evals = _eval_sets(evaluate_on, imgsz, model.classes.name)
    report = {"checkpoint": str(src), "out": str(dst), "data": [n for n, _, _ in sets], "evaluations": {}}
    before = {name: _score(model, ds, dev, show_progress, f"before {name}") for name, ds in evals}
    union = ConcatDataset([ds for _, _, ds in sets])  # one seeded subset over all the sources
    size: list = []
    try:
        used = recompute_bn_stats(model, _progress(precise_bn_images(union, num_images, batch_size, dev, seed),
                                                   min(num_images, total) // batch_size, show_progress, size))
    except ImageSizeMismatch as e:
        raise ConfigError(f"--data: {e}; pass --imgsz H W (the size the model will run at) so that whole "
                          "images can be batched") from None
    after = {name: _score(model, ds, dev, show_progress, f"after {name}") for name, ds in evals}
    for name in before:
        report["evaluations"][name] = {"miou_before": before[name], "miou_after": after[name]}
    report.update(images=used * batch_size, batches=used, batch_size=batch_size,
                  image_size=size or None)
    record = {k: report[k] for k in ("checkpoint", "data", "images", "batch_size", "image_size")}
    record["seed"] = seed
    # a plain segmenter checkpoint (from a final.pt or a full training state alike): its descriptive
    # fields, not an optimiser / method state that would bring the old statistics back on resume
    new = {k: obj[k] for k in ("format", "iteration", "config") if k in obj}
    new["kind"] = "adabn"
    if isinstance(obj.get("method"), str):
        new["method"] = obj["method"]
    if "metrics" in obj:
        new["metrics_before_adabn"] = obj["metrics"]  # scored with the old statistics
    new.update(segmenter=segmenter_entry(model.cpu()), bn_stats=record)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(new, dst)
    return report


def _eval_sets(specs, imgsz, classes: str):
    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.train.eval_api import data_name, parse_data_spec

    out = []
    for spec in specs:
        cfg = parse_data_spec(spec, imgsz)
        if cfg.type == "folder" and cfg.classes is None:  # as `pipa-edge eval`: labels in the model's classes
            cfg = cfg.model_copy(update={"classes": classes})
        out.append((data_name(cfg), build_eval_dataset(cfg)))
    return out


def _score(model, ds, dev, show_progress: bool, desc: str) -> float | None:
    from pipa_edge.train.evaluate import evaluate

    return evaluate(model, ds, None, dev, desc=desc, show_progress=show_progress)["miou"]


def _progress(batches, total: int, show: bool, size: list):
    """The batches with a progress bar; ``size`` gets the images' ``[H, W]``."""
    from pipa_edge.log import progress

    with progress("adabn: BN statistics", total, disable=not show) as bar:
        for x in batches:
            size[:] = list(x.shape[-2:])
            yield x
            bar.advance(1)
