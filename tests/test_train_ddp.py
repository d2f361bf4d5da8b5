"""DDP through torchrun: 2 CPU processes (gloo) train on disjoint shards and end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from pipa_edge.config import dump_config
from pipa_edge.data.classes import SYNTH11
from pipa_edge.models.io import load_segmenter
from pipa_edge.train.config import load_train_config
from pipa_edge.train.toydata import make_folder_dataset

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import os, sys, torch
    torch.set_num_threads(1)
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import train
    res = train(load_train_config(sys.argv[1]))
    rank = int(os.environ["RANK"])
    torch.save({"state": {k: v.cpu() for k, v in res.segmenter.state_dict().items()},
                "in_sync": res.ranks_in_sync}, os.path.join(sys.argv[2], f"rank{rank}.pt"))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed gloo missing")
def test_torchrun_two_cpu_ranks_end_identical(tmp_path):
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=8, seed=0)
    cfg = load_train_config(None, [
        "model.classes=synth11", f"source={{type: folder, root: {src}, classes: synth11}}",
        "transform.crop_size=[32,32]", "transform.scale_range=[0.8,1.2]", "optim.lr=1e-3",
        "optim.warmup_iters=1", "optim.max_iters=4", "ckpt_interval=2", "batch_size=2", "device=cpu",
        f"out_dir={tmp_path / 'run'}"])
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1", PIPA_NO_PROGRESS="1", PIPA_QUIET="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(tmp_path / "child.py"), str(tmp_path / "cfg.yaml"), str(tmp_path)]
    p = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["in_sync"] and r1["in_sync"]
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"ranks differ at {k}"
    # it trained (weights moved away from the seeded init) and rank 0 wrote the checkpoints
    final = load_segmenter(tmp_path / "run" / "final.pt").state_dict()
    assert all(torch.equal(final[k], v) for k, v in r0["state"].items())
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["world_size"] == 2 and len(ck["rng_ranks"]) == 2 and ck["iteration"] == 4
    assert not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])  # per-rank streams
