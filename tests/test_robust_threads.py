"""Thread control: a passive OpenMP wait policy in place before torch loads libgomp, ``--threads`` on the
heavy commands and ``threads:`` in a recipe. (The contention benchmark itself is bench/contention.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pipa_edge import threads
from pipa_edge.cli.main import main
from pipa_edge.errors import ConfigError


def _python(code: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_DISPLAY_ENV")}
    base.update(OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=120)


SPIN_0 = "GOMP_SPINCOUNT = '0'"  # what libgomp reports (OMP_DISPLAY_ENV=VERBOSE) under OMP_WAIT_POLICY=PASSIVE


def test_cli_entry_sets_passive_wait_policy_before_libgomp_reads_it():
    """libgomp reads the policy when torch loads it; its verbose report shows spin count 0 (passive)
    through the CLI entry and ``import pipa_edge``."""
    for entry in ("pipa_edge.cli.main", "pipa_edge"):
        r = _python(f"import sys, {entry}; assert 'torch' not in sys.modules; import torch; torch.ones(2) + 1",
                    OMP_DISPLAY_ENV="VERBOSE")
        assert r.returncode == 0, r.stderr
        assert SPIN_0 in r.stderr, r.stderr[-2000:]


def test_torch_imported_first_keeps_the_library_default_and_a_user_policy_wins():
    r = _python("import torch, pipa_edge; torch.ones(2) + 1", OMP_DISPLAY_ENV="VERBOSE")
    assert r.returncode == 0 and "GOMP_SPINCOUNT" in r.stderr and SPIN_0 not in r.stderr  # too late: documented
    r = _python("import os, pipa_edge.cli.main; print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE")
    assert r.stdout.strip() == "ACTIVE"


def test_default_and_explicit_thread_counts(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3 and threads.resolve(None) == 3 and threads.resolve(0) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == threads.usable_cpus() >= 1
    assert threads.resolve(2) == 2
    with pytest.raises(ConfigError, match="--threads: '-1' must be a positive number"):
        threads.resolve(-1)
    before = torch.get_num_threads()
    try:
        assert threads.set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_set_threads_without_torch_sets_only_the_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.set_threads(3, use_torch=False) == 3 and os.environ["OMP_NUM_THREADS"] == "3"


def test_train_threads_flag_and_config_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("source: {type: folder, root: x}\nthreads: 2\n")
    assert main(["train", str(recipe), "--print-config"]) == 0
    assert "threads: 2" in capsys.readouterr().out
    assert main(["train", str(recipe), "--threads", "1", "--print-config"]) == 0
    assert "threads: 1" in capsys.readouterr().out
    assert main(["train", str(recipe), "--threads", "-2"]) == 2
    err = capsys.readouterr().err
    assert "key 'threads'" in err and "Traceback" not in err


def test_trainer_applies_the_thread_count(tmp_path):
    from test_train_loop import tiny_cfg

    from pipa_edge.train.trainer import train

    torch.set_num_threads(2)
    try:
        train(tiny_cfg(tmp_path, "optim.max_iters=1", "ckpt_interval=1", "threads=1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("cmd", ["train", "demo", "eval", "adabn", "export"])
def test_threads_option_on_every_heavy_command(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    assert "--threads" in capsys.readouterr().out
