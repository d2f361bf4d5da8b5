"""JSON/CSV/PNG output and before/after comparison of pipa_edge.bench.report."""

from __future__ import annotations

import csv
import json

import pytest
from rich.console import Console

from pipa_edge.bench.report import FORMAT, compare, print_compare, print_table, rows_of, write_all
from pipa_edge.bench.stats import LatencyStats
from pipa_edge.errors import PipaError


def _result(model: str, samples: list[float], backend: str = "onnxruntime") -> dict:
    st = LatencyStats.from_samples(samples)
    return {"key": f"{model}|{backend}|fp32|64x64", "model": model, "backend": backend, "device": "cpu",
            "precision": "fp32", "input_size": [64, 64], "batch": 1, "size_mb": 1.5, "host_ms": st.to_dict(),
            "gpu_ms": None, "warmup": {"iters": 3, "stable": True}, "energy_mj_per_frame": None,
            "samples_ms": samples}


def _payload(results):
    return {"command": "pipa-edge bench test", "machine": "test machine", "env": {}, "results": results}


def test_rows_ratio_to_first_row():
    rows = rows_of([_result("a", [10.0, 10.0, 10.0]), _result("b", [5.0, 5.0, 5.0])])
    assert rows[0]["speed_vs_first"] == pytest.approx(1.0)
    assert rows[1]["speed_vs_first"] == pytest.approx(2.0)  # half the p50 = twice as fast


def test_write_json_csv_png(tmp_path):
    res = [_result("a", [float(v) for v in range(1, 101)]), _result("b", [5.0, 6.0, 7.0, 8.0])]
    files = write_all(tmp_path, _payload(res), stem="run1")
    data = json.loads(files["json"].read_text())
    assert data["format"] == FORMAT
    assert "linear interpolation" in data["method"]["percentiles"]
    assert data["results"][0]["host_ms"]["p99"] == pytest.approx(99.01)
    assert len(data["results"][0]["samples_ms"]) == 100  # raw samples kept
    with files["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["a", "b"]
    assert float(rows[0]["p50"]) == pytest.approx(50.5)
    assert float(rows[1]["p90"]) == pytest.approx(7.7)
    png = files["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_table_prints_every_row():
    con = Console(record=True, width=160)
    print_table([_result("alpha", [10.0, 11.0]), _result("beta", [5.0, 5.5])], console=con)
    text = con.export_text()
    assert "alpha" in text and "beta" in text and "2.00x" in text


def test_compare_prints_ratios(tmp_path):
    before = write_all(tmp_path / "b", _payload([_result("m", [10.0, 10.0, 20.0])]))["json"]
    after = write_all(tmp_path / "a", _payload([_result("m", [5.0, 5.0, 10.0]), _result("new", [1.0])]))["json"]
    rows = compare(before, after)
    assert len(rows) == 1  # "new" has no counterpart
    r = rows[0]
    assert r["p50_ratio"] == pytest.approx(0.5)
    assert r["speedup"] == pytest.approx(2.0)
    con = Console(record=True, width=160)
    print_compare(rows, str(before), str(after), console=con)
    out = con.export_text()
    assert "0.500" in out and "2.00x" in out


def test_compare_errors(tmp_path):
    good = write_all(tmp_path / "g", _payload([_result("m", [1.0])]))["json"]
    other = write_all(tmp_path / "o", _payload([_result("x", [1.0])]))["json"]
    with pytest.raises(PipaError, match="no result matches"):
        compare(good, other)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PipaError, match="not valid JSON"):
        compare(good, bad)
    with pytest.raises(PipaError, match="not found"):
        compare(good, tmp_path / "missing.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"results": []}))
    with pytest.raises(PipaError, match="not a pipa-edge bench JSON"):
        compare(foreign, good)
