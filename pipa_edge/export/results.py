"""What ``pipa-edge export`` (checkpoint route) hands back: :class:`ExportResult`, its JSON report,
its results table and the next commands."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from pipa_edge import log
from pipa_edge.export.config import ExportConfig
from pipa_edge.export.parity import ParityReport
from pipa_edge.runtime.backends.sidecar import write_json_atomic


@dataclass
class ExportRow:
    format: str
    file: str | None
    size_mb: float | None
    parity: str
    ms: float | None


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: list[ExportRow] = field(default_factory=list)
    parity: dict[str, ParityReport] = field(default_factory=dict)
    accuracy: dict | None = None
    export_s: float = 0.0
    report: Path | None = None

    @property
    def deployed(self) -> Path:
        """The file the runtime should load (engine > openvino > int8/fp16 ONNX > ONNX)."""
        for k in ("engine", "openvino", "onnx_int8", "onnx_fp16", "onnx_stateful", "onnx"):
            if k in self.files:
                return self.files[k]
        raise KeyError("nothing exported")


def next_commands(res: ExportResult, train_config: dict | None) -> None:
    """``eval`` of the exported ONNX on the recipe's first val set (the shipped artefact's number), then ``run``."""
    from pipa_edge.models.input_size import eval_data_arg

    data = eval_data_arg(train_config or {})
    if data:
        log.next_command(f"pipa-edge eval {res.files['onnx']} --data {data}")
    log.next_command(f"pipa-edge run test:// --model {res.deployed}")


def write_report(res: ExportResult, cfg: ExportConfig, ckpt: Path, out_dir: Path, stem: str) -> Path:
    data = {"checkpoint": str(ckpt), "config": cfg.model_dump(mode="json"),
            "files": {k: str(v) for k, v in res.files.items()},
            "rows": [dataclasses.asdict(r) for r in res.rows],
            "parity": {k: v.to_dict() for k, v in res.parity.items()}, "accuracy": res.accuracy,
            "export_s": round(res.export_s, 2)}
    return write_json_atomic(out_dir / f"{stem}.export.json", data)


def print_table(res: ExportResult) -> None:
    from rich.table import Table

    t = Table(title=f"export results ({res.export_s:.1f}s; ms/frame = median batch-1 latency on this machine)",
              title_justify="left")
    for col in ("Format", "File", "Size MB", "Parity vs torch", "ms/frame"):
        t.add_column(col, justify="right" if col in ("Size MB", "ms/frame") else "left", overflow="fold")
    for r in res.rows:
        t.add_row(r.format, r.file or "-", "-" if r.size_mb is None else f"{r.size_mb:.1f}", r.parity,
                  "-" if r.ms is None else f"{r.ms:.1f}")
    if not log.is_quiet():
        log.console.print(t)
