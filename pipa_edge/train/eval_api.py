"""``pipa-edge eval CKPT --data SPEC`` as a Python API: :func:`evaluate_checkpoint`.

A data SPEC is either a YAML file holding a :class:`~pipa_edge.data.config.DatasetConfig` mapping
(``{type: camvid, root: ..., split: dusk_train}``) or ``TYPE:ROOT[:SPLIT]``, e.g.
``camvid:../shared/data/camvid:dusk_train``. ``--imgsz H W`` resizes image and label (label
nearest-neighbour) before inference; without it the model's size is used (the size a checkpoint
records, or an exported model's deployed size — exported files run through their runtime backend).
For each dataset the report is written as ``<out>/<name>.json`` and the per-class IoU chart as
``<out>/<name>_iou.png``.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Sequence

from pipa_edge.config import read_yaml, validate
from pipa_edge.data.config import DatasetConfig, DatasetType
from pipa_edge.errors import ConfigError
from pipa_edge.fileio import write_text
from pipa_edge.log import ok, stage
from pipa_edge.train.config import EvalConfig

KNOWN_TYPES = typing.get_args(DatasetType)


def parse_data_spec(spec: str | DatasetConfig | dict, imgsz: Sequence[int] | None = None,
                    limit: int | None = None) -> DatasetConfig:
    """``TYPE:ROOT[:SPLIT]`` or a YAML file → :class:`DatasetConfig` (optionally resized / limited)."""
    if isinstance(spec, DatasetConfig):
        cfg = spec
    elif isinstance(spec, dict):
        cfg = validate(DatasetConfig, spec, where="--data")
    elif spec.endswith((".yaml", ".yml")):
        cfg = validate(DatasetConfig, read_yaml(spec), where=spec)
    else:
        kind, sep, rest = spec.partition(":")
        if not sep or not rest:
            raise ConfigError(f"--data '{spec}': expected TYPE:ROOT[:SPLIT] or a YAML file")
        if kind not in KNOWN_TYPES:
            raise ConfigError(f"--data '{spec}': unknown dataset type '{kind}' (known: {', '.join(KNOWN_TYPES)})")
        root, split = rest, None
        if ":" in rest:
            head, _, tail = rest.rpartition(":")
            if head and tail and "/" not in tail:
                root, split = head, tail
        data = {"type": kind, "root": root}
        if split:
            data["split"] = split
        cfg = validate(DatasetConfig, data, where=f"--data '{spec}'")
    update = {}
    if imgsz is not None:
        if len(imgsz) != 2 or min(int(v) for v in imgsz) <= 0:
            raise ConfigError(f"--imgsz {imgsz}: expected two positive numbers H W")
        update["resize"] = (int(imgsz[0]), int(imgsz[1]))
    if limit is not None:
        update["limit"] = int(limit)
    return cfg.model_copy(update=update) if update else cfg


def data_name(cfg: DatasetConfig) -> str:
    name = f"{cfg.type}_{Path(cfg.root).name}_{cfg.split}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def evaluate_checkpoint(ckpt: str | Path, data: Sequence[str | DatasetConfig | dict], out_dir: str | Path,
                        imgsz: Sequence[int] | None = None, eval_cfg: EvalConfig | None = None,
                        device: str = "auto", limit: int | None = None, num_workers: int = 0,
                        show_progress: bool = True, backend: str | None = None) -> list[dict]:
    """Score a pipa-edge checkpoint — or an exported model (``.onnx``/engine/OpenVINO, through its
    runtime backend at its deployed size) — on each dataset; write ``<name>.json`` and ``<name>_iou.png``.

    ``imgsz=None`` scores at the model's size: the size a checkpoint records
    (:mod:`pipa_edge.models.input_size`; the dataset's own size, with a warning, for old checkpoints
    without one), or an exported model's ``input_size``. Returns the list of reports (each: metrics
    summary + ``checkpoint``, ``data``, ``sizes``, ``json``, ``png``).
    """
    from contextlib import nullcontext

    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.data.classes import CLASS_SETS
    from pipa_edge.train.evaluate import evaluate, evaluate_backend, plot_iou_bars

    if not data:
        raise ConfigError("--data: give at least one dataset to evaluate on")
    eval_cfg = eval_cfg or EvalConfig()
    model, classes, arch, size, dev = _open_model(ckpt, imgsz, device, backend)
    cfgs = [parse_data_spec(d, size["scored_at"], limit) for d in data]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    exported = size["kind"] == "exported"
    with model if exported else nullcontext():  # a backend is closed after, even on error
        for cfg in cfgs:
            if cfg.type == "folder" and cfg.classes is None and classes.name in CLASS_SETS:
                cfg = cfg.model_copy(update={"classes": classes.name})  # labels in the model's classes
            ds = build_eval_dataset(cfg)
            name = data_name(cfg)
            stage("eval", f"{Path(ckpt).name} on {name}: {len(ds)} images, {eval_cfg.mode} inference, {dev}, "
                          f"{_size_line(size)}")
            if exported:
                summary = evaluate_backend(model, ds, eval_cfg, num_workers, desc=f"eval {name}",
                                           show_progress=show_progress)
            else:
                summary = evaluate(model, ds, eval_cfg, dev, num_workers, amp=False, desc=f"eval {name}",
                                   show_progress=show_progress)
            report = {"checkpoint": str(ckpt), "data": cfg.model_dump(mode="json"), "arch": arch,
                      "eval": eval_cfg.model_dump(mode="json"), "sizes": size, **summary}
            jpath, ppath = out / f"{name}.json", out / f"{name}_iou.png"
            report["json"], report["png"] = str(jpath), str(ppath)
            write_text(jpath, json.dumps(report, indent=2))  # pipa_edge.fileio: a full disk is one line
            miou = "n/a" if summary["miou"] is None else f"{100 * summary['miou']:.2f}"
            plot_iou_bars(summary, ppath, title=f"{arch} on {name}: mIoU {miou}", palette=classes.palette)
            print_table(summary, name)
            ok("eval", f"{name}: mIoU {miou}  pixel acc {100 * (summary['pixel_acc'] or 0):.2f} → {jpath}, {ppath}")
            reports.append(report)
    return reports


EXPORTED_SUFFIXES = (".onnx", ".engine", ".plan", ".trt", ".xml")


def _open_model(path, imgsz, device: str, backend: str | None):
    """Checkpoint → (segmenter on device, ...) scored at ``imgsz`` or the recorded size; an exported file →
    (backend, ...) run at its deployed size, scored at ``imgsz`` or that size. Returns
    ``(model, classes, arch, sizes record, device)``."""
    from pipa_edge.log import warn

    hw = (int(imgsz[0]), int(imgsz[1])) if imgsz is not None else None
    if Path(path).suffix.lower() in EXPORTED_SUFFIXES:
        from pipa_edge.runtime.backends import load_backend

        b = load_backend(path, backend=backend)
        deployed = tuple(b.meta.input_size)
        size = {"kind": "exported", "model_input_size": list(deployed), "model_input_size_from": "sidecar input_size",
                "scored_at": hw or deployed}
        return b, b.meta.classes, b.meta.extra.get("arch", "?"), size, b.describe()
    from pipa_edge.models.input_size import recorded_input_size
    from pipa_edge.models.io import read_checkpoint, segmenter_from_entry
    from pipa_edge.train.dist import pick_device

    ck = read_checkpoint(path)
    rec, origin = recorded_input_size(ck)
    if hw is None and rec is None:
        warn("eval", f"{path}: the checkpoint records no input size; scoring at each dataset's own size "
                     "(pass --imgsz H W, the size the model runs at)")
    dev = pick_device(device)
    model = segmenter_from_entry(ck["segmenter"], where=str(path)).to(dev)
    size = {"kind": "checkpoint", "model_input_size": list(rec) if rec else None, "model_input_size_from": origin,
            "scored_at": hw or rec}
    return model, model.classes, model.arch, size, dev


def _size_line(size: dict) -> str:
    at = size["scored_at"]
    scored = f"scored at {at[0]}x{at[1]}" if at else "scored at the dataset's size"
    m = size["model_input_size"]
    run = f"runs at {m[0]}x{m[1]} ({size['model_input_size_from']})" if m else "no recorded size"
    return f"{scored}, {run}"


def print_table(summary: dict, title: str) -> None:
    from rich.table import Table

    from pipa_edge.log import _quiet, console

    if _quiet:
        return
    t = Table(title=title, show_lines=False)
    t.add_column("class")
    t.add_column("IoU %", justify="right")
    t.add_column("acc %", justify="right")
    for n in summary["class_names"]:
        iou, acc = summary["per_class_iou"][n], summary["per_class_acc"][n]
        present = n in summary["classes_in_gt"]
        t.add_row(n, f"{100 * iou:.2f}" if (iou is not None and present) else "n/a",
                  f"{100 * acc:.2f}" if acc is not None else "n/a")
    miou = summary["miou"]
    t.add_row("[bold]mIoU[/]", "n/a" if miou is None else f"[bold]{100 * miou:.2f}[/]",
              f"{100 * (summary['mean_acc'] or 0):.2f}")
    console.print(t)
