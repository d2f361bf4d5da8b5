"""Resume after SIGKILL: a killed-and-resumed run ends with bit-identical weights (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pipa_edge.config import dump_config
from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError
from pipa_edge.models.io import read_checkpoint
from pipa_edge.train.config import load_train_config
from pipa_edge.train.scalars import read_scalars
from pipa_edge.train.toydata import make_folder_dataset
from pipa_edge.train.trainer import train

REPO = Path(__file__).resolve().parents[1]

# The child runs the real trainer; steps after the first checkpoint are slowed (sleep only, no
# numerical change) so the parent has time to SIGKILL it between two checkpoints. It runs with the
# parent's thread count: bit-exact resume is promised for the same settings (`threads`), and
# float reductions may differ between thread counts.
CHILD = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(int(sys.argv[3]))
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.method import SourceOnly
    from pipa_edge.train.trainer import train
    orig = SourceOnly.training_step
    def slow(self, batch, it):
        if it >= int(sys.argv[2]):
            time.sleep(1.0)
        return orig(self, batch, it)
    SourceOnly.training_step = slow
    train(load_train_config(sys.argv[1]))
""")


def _overrides(tmp_path, out):
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=6, size=(40, 40), seed=0)
    tgt = make_folder_dataset(tmp_path / "tgt", SYNTH11, n=5, size=(40, 40), seed=1, dark=0.5)
    return [
        "model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
        f"target={{type: folder, root: {tgt}, classes: synth11}}",
        "transform.crop_size=[32,32]", "transform.scale_range=[0.8,1.25]", "transform.brightness=0.2",
        "optim.lr=1e-3", "optim.warmup_iters=2", "optim.max_iters=9", "optim.grad_clip=1.0",
        "batch_size=2", "ckpt_interval=4", "log_interval=1", "device=cpu", "seed=7", f"out_dir={out}"]


def _cfg(tmp_path, out):
    return load_train_config(None, _overrides(tmp_path, out))


def _flatten(d, prefix=""):
    """Tensors of a nested checkpoint dict, keyed by their path."""
    out = {}
    for k, v in (d.items() if isinstance(d, dict) else enumerate(d)):
        if isinstance(v, torch.Tensor):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, (dict, list, tuple)):
            out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _state(path):
    ck = read_checkpoint(path)
    return ck["segmenter"]["state_dict"], ck


def test_sigkill_then_resume_matches_uninterrupted_run_bit_exactly(tmp_path):
    ref = train(_cfg(tmp_path, tmp_path / "ref"))
    ref_sd, ref_ck = _state(ref.last)

    cfg = _cfg(tmp_path, tmp_path / "killed")
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    (tmp_path / "child.py").write_text(CHILD)
    threads = torch.get_num_threads()  # the reference's and the resumed run's (train's default)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PIPA_NO_PROGRESS="1", PIPA_QUIET="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "cfg.yaml"), "4",
                             str(threads)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 60
    try:
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if not last.exists():
            tail = proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "(still running)"
            pytest.fail(f"child wrote no checkpoint: {tail}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(last)["iteration"]
    assert killed_at in (4, 8)  # killed mid-run, between checkpoints (steps 4.. sleep 1 s; normally at 4)
    assert not (tmp_path / "killed" / "final.pt").exists()

    res = train(cfg, resume=True)
    sd, ck = _state(res.last)
    assert ck["iteration"] == ref_ck["iteration"] == 9
    assert sd.keys() == ref_sd.keys()
    for k in ref_sd:
        assert torch.equal(sd[k], ref_sd[k]), f"weights differ at {k}"
    for a, b in zip(ck["optimizer"]["state"].values(), ref_ck["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert torch.equal(ck["rng"]["torch"], ref_ck["rng"]["torch"])
    # the scalar log reads like one run: each iteration logged once, same losses as the reference
    got = read_scalars(res.out_dir / "scalars.csv")["train/loss"]
    want = read_scalars(ref.out_dir / "scalars.csv")["train/loss"]
    assert [i for i, _ in got] == list(range(1, 10))
    assert got == want


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_cfg(tmp_path, tmp_path / "empty"), resume=True)


def test_interrupted_pipa_run_resumes_bit_exactly(tmp_path, monkeypatch):
    """An adaptation run (EMA teacher, projection heads, patch memory, ClassMix RNG) stopped after a
    checkpoint and resumed ends with the weights, teacher and memory of the uninterrupted run."""
    from pipa_edge.adapt.adapter import Adapter

    pipa = ["method=pipa", "adapt.pixel_contrast.enabled=true", "adapt.patch_contrast.enabled=true",
            "adapt.patch_contrast.memory_size=64", "adapt.patch_contrast.view_size=1.0",
            "adapt.pseudo_label.threshold=0.2", "optim.max_iters=6",
            "ckpt_interval=3"]

    def cfg(out):
        return load_train_config(None, [*_overrides(tmp_path, out), *pipa])

    ref = train(cfg(tmp_path / "ref"))
    orig = Adapter.training_step

    def stop_after_checkpoint(self, batch, it):
        if it == 4:  # iterations 0-2 done and checkpointed at 3; iteration 3 runs, 4 is interrupted
            raise KeyboardInterrupt
        return orig(self, batch, it)

    monkeypatch.setattr(Adapter, "training_step", stop_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path / "cut"))
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["iteration"] == 3
    monkeypatch.setattr(Adapter, "training_step", orig)
    res = train(cfg(tmp_path / "cut"), resume=True)
    got, want = read_checkpoint(res.last), read_checkpoint(ref.last)
    assert got["iteration"] == want["iteration"] == 6
    for part in ("segmenter", "method"):
        flat_a, flat_b = _flatten(got[part]), _flatten(want[part])
        assert flat_a.keys() == flat_b.keys() and flat_a, part
        for k in flat_b:
            assert torch.equal(flat_a[k], flat_b[k]), f"{part}: {k} differs"
    assert any("teacher" in k for k in _flatten(got["method"]))
    assert any("memory" in k for k in _flatten(got["method"]))
