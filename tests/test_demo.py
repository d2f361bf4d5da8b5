"""`pipa-edge demo` end to end on a tiny budget: every stage runs and writes its outputs."""

from __future__ import annotations

import json

import cv2

from pipa_edge.cli.main import main


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--iters", "4", "--adapt-iters", "3", "--frames", "12",
               "--n-sim", "12", "--n-real", "12"])
    assert rc == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["miou"]) == {"source-only", "PiPa++"}
    assert all(v is not None and 0.0 <= v <= 1.0 for v in summary["miou"].values())
    assert (out / "per_class_iou.png").stat().st_size > 0
    assert (out / "export" / "model.onnx").is_file() and (out / "export" / "model.onnx.json").is_file()
    run = json.loads((out / "run_summary.json").read_text())
    assert run["frames"] >= 12
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n >= 12
