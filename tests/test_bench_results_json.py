"""bench/lib_results_json.py: benchmark JSON files grow run by run and refuse another setting."""

from __future__ import annotations

import json

import pytest

from _bench_util import load_bench

_rj = load_bench("lib_results_json")
SettingMismatch, open_results, write_results = _rj.SettingMismatch, _rj.open_results, _rj.write_results


def test_rows_of_the_same_setting_are_added(tmp_path):
    p = tmp_path / "sub" / "r.json"
    setting = {"data": "/d dusk_train", "threshold": 0.968}
    res = open_results(p, setting, "cmd a")
    assert res == {**setting, "commands": ["cmd a"], "results": {}}
    res["results"]["m_s0"] = {"miou": 0.3}
    write_results(p, res)
    res = open_results(p, setting, "cmd b")
    res["results"]["m_s1"] = {"miou": 0.31}
    write_results(p, res)
    saved = json.loads(p.read_text())
    assert saved["commands"] == ["cmd a", "cmd b"]
    assert saved["results"] == {"m_s0": {"miou": 0.3}, "m_s1": {"miou": 0.31}}
    # a row scored again replaces its earlier value, the others stay
    res = open_results(p, setting, "cmd c")
    res["results"]["m_s0"] = {"miou": 0.29}
    write_results(p, res)
    assert json.loads(p.read_text())["results"] == {"m_s0": {"miou": 0.29}, "m_s1": {"miou": 0.31}}


def test_another_setting_is_refused_naming_the_key_and_nothing_is_written(tmp_path):
    p = tmp_path / "r.json"
    write_results(p, {**open_results(p, {"threshold": 0.968, "class_quantile": 0.5}, "cmd"), "results": {"a": 1}})
    before = p.read_text()
    with pytest.raises(SettingMismatch, match=r"class_quantile: 0\.5 there, None now"):
        open_results(p, {"threshold": 0.968, "class_quantile": None}, "cmd 2")
    assert p.read_text() == before


def test_a_file_of_the_one_command_layout_keeps_its_command(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"threshold": 0.9, "command": "old", "results": {"a": 1}}))
    res = open_results(p, {"threshold": 0.9}, "new")
    assert res["commands"] == ["old", "new"] and res["results"] == {"a": 1} and "command" not in res
