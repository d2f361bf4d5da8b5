"""The parity gate: an exported file against PyTorch on the same frames, through the backends.

Reports max/mean |Δ| of the outputs (logits or probabilities) and the argmax agreement (the share
of pixels whose predicted class is the same). The gate fails when the agreement is below the
threshold for the precision (FP32: 99.9 %) or, if set, when max |Δ| exceeds ``max_abs``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pipa_edge.errors import PipaError

MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "int8": 0.90}


class ParityError(PipaError):
    """The exported model does not reproduce PyTorch within the gate."""


@dataclass
class ParityReport:
    frames: int
    source: str
    max_abs: float | None  # None for label outputs (no scores to compare)
    mean_abs: float | None
    agreement: float  # argmax/label agreement in [0, 1]
    min_agreement: float
    passed: bool

    def line(self) -> str:
        d = "" if self.max_abs is None else f"max|Δ| {self.max_abs:.2e}, mean|Δ| {self.mean_abs:.2e}, "
        return (f"{d}argmax agreement {100 * self.agreement:.3f}% (gate ≥ {100 * self.min_agreement:.1f}%) "
                f"on {self.frames} frames from {self.source}")

    def to_dict(self) -> dict:
        return asdict(self)


def _labels_of(out: np.ndarray, kind: str) -> np.ndarray:
    return out if kind == "labels" else out.argmax(1)


def compare(ref_backend, test_backend, frames: np.ndarray, source: str, precision: str = "fp32",
            min_agreement: float | None = None, max_abs: float | None = None, batch: int = 1) -> ParityReport:
    """Run both backends on ``frames`` (N, H, W, 3) uint8 and compare."""
    kind = test_backend.meta.output
    max_d, sum_d, n_el, agree, n_px = 0.0, 0.0, 0, 0, 0
    for i in range(0, len(frames), batch):
        x = frames[i:i + batch]
        a, b = ref_backend.infer(x), test_backend.infer(x)
        if a.shape != b.shape:
            raise ParityError(f"parity: output shapes differ: torch {a.shape} vs exported {b.shape}")
        if kind != "labels":
            d = np.abs(a.astype(np.float32) - b.astype(np.float32))
            max_d, sum_d, n_el = max(max_d, float(d.max())), sum_d + float(d.sum(dtype=np.float64)), n_el + d.size
        la, lb = _labels_of(a, kind), _labels_of(b, kind)
        agree += int((la == lb).sum())
        n_px += la.size
    thr = MIN_AGREEMENT.get(precision, 0.999) if min_agreement is None else float(min_agreement)
    agreement = agree / max(n_px, 1)
    passed = agreement >= thr and (max_abs is None or kind == "labels" or max_d <= max_abs)
    return ParityReport(len(frames), source, None if kind == "labels" else max_d,
                        None if kind == "labels" else sum_d / max(n_el, 1), agreement, thr, passed)


def gate(report: ParityReport, where: str) -> None:
    if not report.passed:
        raise ParityError(f"{where}: parity gate failed: {report.line()}")
