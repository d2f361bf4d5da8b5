"""TrainConfig validation: bad keys/values give one-line errors naming the key; recipes load."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipa_edge.cli.main import main
from pipa_edge.errors import ConfigError
from pipa_edge.train.config import TrainConfig, load_train_config
from pipa_edge.train.optim import WarmupPoly

REPO = Path(__file__).resolve().parents[1]
SRC = "source={type: folder, root: /nonexistent, classes: synth11}"


def _err(overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_train_config(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_and_invalid_keys_are_named():
    assert "optim.lrr" in _err([SRC, "optim.lrr=0.1"]) and "unknown key" in _err([SRC, "optim.lrr=0.1"])
    assert "optim.lr" in _err([SRC, "optim.lr=-1"])
    assert "batch_size" in _err([SRC, "batch_size=zero"])
    assert "model.arch" in _err([SRC, "model.arch=resnet9000"])
    assert "model.classes" in _err([SRC, "model.classes=nope"])
    assert "source" in _err([])  # required section missing
    assert "source.type" in _err(["source={type: imagenet, root: x}"])
    assert "eval" in _err([SRC, "eval.mode=slide"])  # slide needs a crop
    assert "target" in _err([SRC, "method=mean_teacher"])  # adaptation needs target images


def test_yaml_file_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"source: {{type: folder, root: x, classes: synth11}}\nnum_worker: 2\n")
    msg = _err([], bad)
    assert str(bad) in msg and "num_worker" in msg


def test_cli_bad_key_exits_2_with_one_line(tmp_path, capsys):
    rc = main(["train", str(REPO / "train" / "synth_source_only.yaml"), "--set", "optim.warmup=3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "optim.warmup" in err and "Traceback" not in err


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "train").glob("*source_only*.yaml")))
def test_source_only_recipes_validate(recipe):
    cfg = load_train_config(REPO / "train" / recipe)
    assert isinstance(cfg, TrainConfig) and cfg.method == "source_only"
    assert cfg.optim.warmup_iters < cfg.optim.max_iters


def test_warmup_poly_schedule():
    cfg = load_train_config(None, [SRC, "optim.max_iters=100", "optim.warmup_iters=10", "optim.warmup_ratio=0.1",
                                   "optim.power=1.0"]).optim
    f = WarmupPoly(cfg)
    assert f(0) == pytest.approx(0.1)  # warm-up starts at warmup_ratio (poly factor 1 at it=0)
    assert f(5) == pytest.approx(0.95 * (0.1 + 0.9 * 0.5))
    assert f(10) == pytest.approx(0.9)  # warm-up over: pure poly
    assert f(100) == pytest.approx(0.0)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))


def test_cli_print_config_shows_resolved_values(capsys):
    rc = main(["train", str(REPO / "train" / "synth_source_only.yaml"), "--set", "optim.max_iters=7",
               "--out", "runs/x", "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0 and "max_iters: 7" in out and "out_dir: runs/x" in out
