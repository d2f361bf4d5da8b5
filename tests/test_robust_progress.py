"""Progress off a terminal (CI, nohup, journald, ``> log``): plain periodic lines with iteration, loss,
lr, s/it and ETA for training, one unwrapped line per stats interval for ``run``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipa_edge import log


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_bar_lines_every_interval_with_rate_and_eta(monkeypatch):
    lines = []
    monkeypatch.setattr(log.console, "print", lambda text, **_k: lines.append(text))
    c = Clock()
    bar = log.PlainBar("train", 100, every_s=10.0, clock=c)
    for i in range(100):
        c.t += 0.5
        bar.advance(1, info=f"loss {1 / (i + 1):.3f} lr 1.00e-03")
    # one line per 10 s (every 20 iterations at 0.5 s/it) and the final one
    assert len(lines) == 5
    assert lines[0] == "[train] 20/100 (20%) · loss 0.050 lr 1.00e-03 · 0.5 s/it · ETA 0:00:40"
    assert lines[-1].startswith("[train] 100/100 (100%)") and lines[-1].endswith("ETA 0:00:00")


def test_resumed_start_is_not_timed(monkeypatch):
    lines = []
    monkeypatch.setattr(log.console, "print", lambda text, **_k: lines.append(text))
    c = Clock()
    bar = log.PlainBar("train", 1000, every_s=1.0, clock=c)
    bar.advance(900)  # a resumed run jumps to its iteration first
    c.t = 2.0
    bar.advance(1, info="loss 0.1")
    assert lines == ["[train] 901/1000 (90%) · loss 0.1 · 2 s/it · ETA 0:03:18"]


def test_progress_is_plain_off_a_terminal_and_bar_can_be_forced(monkeypatch):
    monkeypatch.delenv("PIPA_NO_PROGRESS", raising=False)
    monkeypatch.delenv("PIPA_PROGRESS", raising=False)
    assert not log.console.is_terminal  # pytest captures stderr: not a TTY
    with log.progress("x", 3) as bar:
        assert isinstance(bar, log.PlainBar)
    monkeypatch.setenv("PIPA_PROGRESS", "bar")
    with log.progress("x", 3) as bar:
        assert isinstance(bar, log.Bar)
    monkeypatch.setenv("PIPA_NO_PROGRESS", "1")
    with log.progress("x", 3) as bar:
        assert isinstance(bar, log.Bar)  # disabled rich bar: prints nothing


def test_training_through_a_pipe_logs_progress_lines(tmp_path):
    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.train.toydata import make_folder_dataset

    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=4, seed=0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{classes: synth11}}\nsource: {{type: folder, root: {src}, classes: synth11}}\n"
                      "transform: {crop_size: [32, 32]}\noptim: {max_iters: 6, warmup_iters: 1}\n"
                      f"batch_size: 2\ndevice: cpu\nthreads: 1\nout_dir: {tmp_path / 'run'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PIPA_NO_PROGRESS", "PIPA_PROGRESS")}
    env.update(PIPA_PROGRESS_INTERVAL="0", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "pipa_edge.cli.main", "train", str(recipe)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[train] ") and "/6 (" in ln]
    assert lines[0] == "[train] 0/6 (0%)"
    pat = re.compile(r"^\[train\] (\d)/6 \(\d+%\) · loss [\d.]+ lr [\d.e+-]+ · [\d.]+ s/it · ETA \d:\d\d:\d\d$")
    its = [int(m.group(1)) for m in map(pat.match, lines[1:]) if m]
    assert its == [1, 2, 3, 4, 5, 6], lines
    assert "\x1b[" not in r.stderr  # no terminal control codes in a log file


def test_run_stats_lines_are_single_lines_off_a_terminal(capsys):
    pytest.importorskip("gi")
    from pipa_edge.cli.main import main

    assert main(["run", "test://?width=64&height=32", "none", "--model", "builtin:palette", "--input-size",
                 "32x64", "--max-frames", "40", "--stats-interval", "0.05"]) == 0
    err = capsys.readouterr().err.splitlines()
    stats = [ln for ln in err if " fps | latency" in ln]
    assert stats and all(ln.startswith("[run] ") and ln.endswith(("%", "-")) for ln in stats)
    assert any(ln.startswith("[run] 40 frames,") and "flip rate" in ln for ln in err)  # summary: one line
