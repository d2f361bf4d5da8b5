"""Helpers for the export/backends tests: a tiny checkpoint and quick export configs."""

from __future__ import annotations

from pathlib import Path

SIZE = (64, 128)


def make_ckpt(folder: Path, arch: str = "lraspp-mbv3", seed: int = 0) -> Path:
    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.models import build_segmenter, save_segmenter

    torch.manual_seed(seed)
    return save_segmenter(Path(folder) / f"{arch}.pt", build_segmenter(arch, SYNTH11).eval())


def quick_cfg(out: Path, **kw):
    """An ExportConfig for tests: 64×128, 2 synthetic parity frames, no timing."""
    from pipa_edge.export.config import ExportConfig

    base = {"imgsz": SIZE, "out_dir": str(out), "bench_runs": 0, "parity": {"n": 2}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return ExportConfig.model_validate(base)
