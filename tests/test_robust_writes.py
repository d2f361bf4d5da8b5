"""One error path for writes: a full disk / no permission / read-only folder while writing a checkpoint,
an export, a JSON or a run's frames is one line naming the path and what was kept, exit 2.

The full disk is simulated by a file object whose ``write`` raises ``ENOSPC`` after a few bytes (the
failure ``torch.save``/``onnx.save`` see on a full disk); one test uses a real 64 KiB tmpfs when this
machine lets the test mount one (root), else it skips.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from pipa_edge import fileio
from pipa_edge.cli.main import main
from pipa_edge.errors import WriteError


class _FullFile:
    """Wraps a real file; writes fail with ENOSPC once ``room`` bytes are used."""

    def __init__(self, f, room: int, code: int = errno.ENOSPC):
        self._f, self._room, self._code = f, room, code

    def write(self, b):
        if len(b) > self._room:
            raise OSError(self._code, os.strerror(self._code))
        self._room -= len(b)
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def disk_full(monkeypatch):
    """Every fileio.atomic_write fails with ENOSPC after 100 bytes."""
    real = os.fdopen

    def fdopen(fd, mode="r", *a, **kw):
        return _FullFile(real(fd, mode, *a, **kw), 100)

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)


def _no_temp_left(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp"))


def test_atomic_write_full_disk_keeps_the_old_file_and_names_the_path(tmp_path, disk_full):
    p = tmp_path / "report.json"
    p.write_text("old")
    with pytest.raises(WriteError) as e:
        fileio.write_text(p, "x" * 1000)
    assert str(e.value) == f"{p}: cannot write (no space left on device); the previous report.json is kept"
    assert p.read_text() == "old" and _no_temp_left(tmp_path)
    with pytest.raises(WriteError, match="nothing was written"):
        fileio.write_text(tmp_path / "new.json", "x" * 1000)
    assert not (tmp_path / "new.json").exists() and _no_temp_left(tmp_path)


def test_torch_save_on_a_full_disk_is_one_write_error(tmp_path, disk_full):
    """torch.save reports the failed write as a RuntimeError whose context is the ENOSPC OSError."""
    import torch

    from pipa_edge.models.io import atomic_torch_save

    with pytest.raises(WriteError, match=r"last\.pt: cannot write \(no space left on device\)"):
        atomic_torch_save({"w": torch.zeros(10_000)}, tmp_path / "last.pt")


@pytest.mark.parametrize("code,text", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_permission_and_read_only_are_write_errors(tmp_path, monkeypatch, code, text):
    def refuse(*_a, **_k):
        raise OSError(code, os.strerror(code), str(tmp_path / "x"))

    monkeypatch.setattr(fileio, "_open_new", refuse)
    with pytest.raises(WriteError, match=f"cannot write \\({text}\\)"):
        fileio.write_text(tmp_path / "x" / "a.json", "{}")


def test_other_oserrors_stay_ordinary(tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fileio, "_open_new", broken)
    with pytest.raises(OSError) as e:
        fileio.write_text(tmp_path / "a.json", "{}")
    assert not isinstance(e.value, WriteError)


def test_no_process_wide_umask_read_and_ordinary_permissions(tmp_path, monkeypatch):
    """Threads write files concurrently: fileio must not flip the process umask to read it."""
    old = os.umask(0o027)
    try:
        def forbidden(*_a):
            raise AssertionError("os.umask called")

        monkeypatch.setattr(fileio.os, "umask", forbidden)
        p = fileio.write_text(tmp_path / "f.txt", "hi")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert p.read_text() == "hi" and (p.stat().st_mode & 0o777) == 0o640


def test_train_checkpoint_on_a_full_disk_exits_2_and_keeps_last_pt(tmp_path, monkeypatch, capsys):
    from test_train_loop import tiny_cfg

    from pipa_edge.config import dump_config
    from pipa_edge.models.io import read_checkpoint

    cfg = tiny_cfg(tmp_path, "optim.max_iters=4", "ckpt_interval=2")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(dump_config(cfg))
    real, calls = os.fdopen, {"n": 0}

    def fdopen(fd, mode="r", *a, **kw):  # config.yaml and the first last.pt fit, the second last.pt does not
        calls["n"] += 1
        return _FullFile(real(fd, mode, *a, **kw), 10**9 if calls["n"] <= 2 else 100)

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    last = tmp_path / "run" / "last.pt"
    assert f"{last}: cannot write (no space left on device); the previous last.pt is kept" in err
    assert "--resume" in err and "Traceback" not in err and err.count("error:") == 1
    assert read_checkpoint(last)["iteration"] == 2  # the earlier checkpoint survives, intact


def test_export_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    import onnx
    from _export_util import make_ckpt

    ckpt = make_ckpt(tmp_path)

    def full(_proto, path, *a, **k):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full)
    rc = main(["export", str(ckpt), "--imgsz", "64", "128", "--out", str(tmp_path / "exp"), "--bench-runs", "0",
               "--no-simplify"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"{tmp_path / 'exp' / 'lraspp-mbv3.onnx'}: cannot write (no space left on device)" in err
    assert "Traceback" not in err and _no_temp_left(tmp_path / "exp")


def test_run_output_folder_on_a_full_disk_exits_2(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gi")
    real, calls = os.fdopen, {"n": 0}

    def fdopen(fd, mode="r", *a, **kw):  # two frames fit, then the disk is full
        calls["n"] += 1
        return _FullFile(real(fd, mode, *a, **kw), 10**9 if calls["n"] <= 2 else 10)

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)
    out = tmp_path / "frames"
    rc = main(["run", "test://?width=64&height=32", f"{out}/", "--model", "builtin:palette", "--input-size",
               "32x64", "--max-frames", "6", "--quiet-stats"])
    err = capsys.readouterr().err
    assert rc == 2
    assert (f"{out / '000002.png'}: cannot write (no space left on device); the 2 frame(s) written before are kept"
            in err)
    assert sorted(p.name for p in out.glob("*.png")) == ["000000.png", "000001.png"]


def test_run_stats_json_in_a_read_only_place_exits_2(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gi")

    def refuse(folder, name):
        raise OSError(errno.EROFS, "Read-only file system", str(folder / name))

    monkeypatch.setattr(fileio, "_open_new", refuse)
    rc = main(["run", "test://?width=64&height=32", "none", "--model", "builtin:palette", "--input-size", "32x64",
               "--max-frames", "2", "--quiet-stats", "--stats-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write (read-only file system)" in err and str(tmp_path) in err


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the monkeypatched tests cover the same path")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_real_full_tmpfs_checkpoint(tiny_tmpfs):
    """A real ENOSPC (64 KiB tmpfs): the 1 MB checkpoint fails as one line, the small one survives."""
    import torch

    from pipa_edge.models.io import atomic_torch_save

    p = tiny_tmpfs / "last.pt"
    atomic_torch_save({"w": torch.zeros(100)}, p)
    before = p.read_bytes()
    with pytest.raises(WriteError, match="no space left on device.*the previous last.pt is kept"):
        atomic_torch_save({"w": torch.zeros(250_000)}, p)
    assert p.read_bytes() == before and _no_temp_left(tiny_tmpfs)


def test_cli_safety_net_for_any_unguarded_write(monkeypatch, capsys):
    """A machine write failure that no write site turned into a WriteError is still one line, exit 2."""
    import pipa_edge.cli.train as train_cli

    def boom(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/scalars.csv")

    monkeypatch.setattr(train_cli, "run", boom)
    assert main(["train", "r.yaml"]) == 2
    err = capsys.readouterr().err
    assert "error: /data/run/scalars.csv: cannot write (no space left on device)" in err and "Traceback" not in err

    def other(_args):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(train_cli, "run", other)
    with pytest.raises(OSError):  # not a machine write failure: an ordinary exception
        main(["train", "r.yaml"])


def test_per_frame_sinks_skip_fsync_but_write_frames_and_name_the_path(tmp_path, monkeypatch):
    """ImageFolderSink / LabelFolderWriter write every frame without an fsync (slow on eMMC/SD); a full
    disk is still one WriteError naming the frame's path. Checkpoint-style writes still fsync."""
    import numpy as np

    from pipa_edge.runtime.sinks import ImageFolderSink, LabelFolderWriter
    from pipa_edge.runtime.uri import OutputSpec

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    sink = ImageFolderSink(OutputSpec("x", "images", str(tmp_path / "img" / "%06d.png")))
    sink.open((8, 8), 10.0)
    labels = LabelFolderWriter(tmp_path / "lab")
    for i in range(2):
        sink.write(np.full((8, 8, 3), 40 * i, np.uint8))
        labels.write(i, np.full((4, 4), i, np.int64), (8, 8))
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["000000.png", "000001.png"]
    assert sorted(p.name for p in (tmp_path / "lab").iterdir()) == ["000000.png", "000001.png"]
    assert synced == []
    fileio.write_text(tmp_path / "report.json", "{}")
    assert len(synced) == 1
    real = os.fdopen
    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode="r", *a, **kw: _FullFile(real(fd, mode, *a, **kw), 10))
    with pytest.raises(WriteError) as e:
        sink.write(np.zeros((8, 8, 3), np.uint8))
    assert str(e.value).startswith(f"{tmp_path / 'img' / '000002.png'}: cannot write (no space left on device)")
    with pytest.raises(WriteError, match=r"000002\.png: cannot write .*2 label file\(s\) written before are kept"):
        labels.write(2, np.zeros((4, 4), np.int64), (8, 8))
    assert _no_temp_left(tmp_path / "img") and _no_temp_left(tmp_path / "lab")
