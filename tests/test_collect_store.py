"""Storage safety of the collector: quotas, eviction, orphans, torn manifests, SIGKILL, ENOSPC."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipa_edge.data.classes import CAMVID11, CITYSCAPES19
from pipa_edge.data.collection import read_manifest, replay
from pipa_edge.errors import DataError
from pipa_edge.runtime.collect import store as store_mod
from pipa_edge.runtime.collect.collector import Collector
from pipa_edge.runtime.collect.config import CollectConfig
from pipa_edge.runtime.collect.ops import verify_collection
from pipa_edge.runtime.collect.store import Store, eviction_order

REPO = Path(__file__).resolve().parents[1]
K = CAMVID11.num_classes


def easy_cfg(**storage) -> CollectConfig:
    """Accept every frame (all rules off) so storage behaviour is what is tested."""
    return CollectConfig.model_validate(dict(
        min_interval_s=0.0, min_blur_var=0.0, min_confident_fraction=0.0, max_mean_entropy=1.0,
        stability={"frames": 1}, dedup={"enabled": False}, thresholds={"value": 0.5}, storage=storage,
        worker_nice=0, queue_size=64))


def sample(i: int, h: int = 32, w: int = 48):
    rng = np.random.default_rng(i)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = np.full((h // 2, w // 2), i % K, np.int64)
    lab[: h // 4] = (i * 7 + 3) % K
    p = np.full((K, h // 2, w // 2), 0.01 / (K - 1), np.float32)
    np.put_along_axis(p, lab[None], 0.99, axis=0)
    return frame, p


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for sub in ("images", "labels", "conf") for p in (root / sub).iterdir())


def test_collector_writes_verified_samples_and_a_dataset_reads_them(tmp_path):
    from pipa_edge.data.datasets.collected import CollectedDataset

    col = Collector(tmp_path / "c", easy_cfg(save_confidence=True, image_format="png"), CAMVID11,
                    {"sha256": "f" * 64, "backend": "onnxruntime"}, source="file://x.mp4")
    for i in range(5):
        col.offer(*sample(i), t=float(i))
    st = col.close()
    assert st["saved"] == 5 and st["samples"] == 5 and st["errors"] == 0
    rep = verify_collection(tmp_path / "c")
    assert rep == {"entries": 5, "problems": [], "orphans": []}
    recs, _, _ = read_manifest(tmp_path / "c")
    e = recs[0]
    assert e["model"]["sha256"] == "f" * 64 and e["backend"] == "onnxruntime" and e["source"] == "file://x.mp4"
    assert set(e["files"]) == {"image", "label", "conf"} and len(e["class_hist"]) == K
    for key in ("t", "thresholds", "mean_entropy", "flip_rate", "confident_fraction", "phash"):
        assert key in e
    ds = CollectedDataset(tmp_path / "c")
    item = ds[2]
    frame, _ = sample(2)
    assert ds.classes == CAMVID11 and len(ds) == 5 and item["name"] == "0000003"
    assert np.array_equal(item["image"], frame)  # PNG: lossless round trip of the RGB frame
    assert item["label"].shape == (32, 48) and item["label"].dtype == np.uint8
    assert set(np.unique(item["label"])) == {2 % K, (2 * 7 + 3) % K}
    assert "label" not in CollectedDataset(tmp_path / "c", labels=False)[0]
    mapped = CollectedDataset(tmp_path / "c", classes=CITYSCAPES19)  # by-name mapping, 'sky' → 10
    assert mapped[0]["label"].max() <= 255 and mapped.classes == CITYSCAPES19


def test_tiny_byte_quota_evicts_and_never_exceeds_bound(tmp_path):
    root = tmp_path / "q"
    one = len(sample(0)[0].tobytes())  # PNG of random data ≈ raw size
    bound = int(3.5 * one)
    col = Collector(root, easy_cfg(max_bytes=bound, eviction="oldest", image_format="png"), CAMVID11)
    for i in range(12):
        col.offer(*sample(i), t=float(i))
        col.flush()
        assert disk_bytes(root) <= bound
        assert col.store.total_bytes == disk_bytes(root)
    st = col.close()
    assert st["evicted"] >= 8 and 1 <= st["samples"] <= 3
    live = replay(read_manifest(root)[0])
    assert list(live) == [f"{i:07d}" for i in range(13 - st["samples"], 13)]  # oldest went first
    assert verify_collection(root)["problems"] == []


def test_redundant_eviction_keeps_rare_classes():
    def entry(name, hist):
        return {"name": name, "class_hist": hist, "pixels": sum(hist), "files": {}}
    entries = [entry("a", [50, 50, 0]), entry("b", [100, 0, 0]), entry("c", [50, 0, 50]), entry("d", [100, 0, 0])]
    # class 0 is in every sample; 'b' and 'd' hold nothing else → least useful, oldest first
    assert eviction_order(entries, "redundant", 0.01, 3, 2) == ["b", "d"]
    assert eviction_order(entries, "oldest", 0.01, 3, 2) == ["a", "b"]


def test_max_samples_quota_with_redundant_policy(tmp_path):
    col = Collector(tmp_path / "m", easy_cfg(max_samples=4, eviction="redundant"), CAMVID11)
    for i in range(10):
        col.offer(*sample(i), t=float(i))
    st = col.close()
    assert st["samples"] == 4 and st["evicted"] == 6
    assert verify_collection(tmp_path / "m")["problems"] == []


def test_orphans_and_torn_manifest_are_repaired_on_open(tmp_path):
    root = tmp_path / "o"
    col = Collector(root, easy_cfg(), CAMVID11)
    for i in range(3):
        col.offer(*sample(i), t=float(i))
    col.close()
    (root / "images" / "0000099.jpg").write_bytes(b"x" * 10)  # renamed but never entered
    (root / "labels" / ".0000100.png.tmp").write_bytes(b"y")  # a write in progress
    with open(root / "manifest.jsonl", "ab") as f:
        f.write(b'{"op": "add", "name": "00001')  # torn last line
    rep = verify_collection(root)
    assert rep["problems"] == [] and rep["entries"] == 3
    assert rep["orphans"] == ["images/0000099.jpg", "labels/.0000100.png.tmp"]
    with Store(root, CAMVID11) as st:
        assert sorted(st.cleaned) == rep["orphans"] and len(st) == 3 and st.next_seq == 4
    assert verify_collection(root) == {"entries": 3, "problems": [], "orphans": []}
    assert (root / "manifest.jsonl").read_bytes().endswith(b"\n")


def test_verify_finds_damaged_and_missing_files(tmp_path):
    root = tmp_path / "v"
    col = Collector(root, easy_cfg(), CAMVID11)
    for i in range(3):
        col.offer(*sample(i), t=float(i))
    col.close()
    lab = root / "labels" / "0000001.png"
    data = bytearray(lab.read_bytes())
    data[-20] ^= 0xFF
    lab.write_bytes(bytes(data))
    (root / "images" / "0000002.jpg").unlink()
    probs = verify_collection(root)["problems"]
    assert len(probs) == 2
    assert any("0000001" in p and "sha256" in p for p in probs) and any("missing image" in p for p in probs)


def test_one_writer_and_matching_classes(tmp_path):
    root = tmp_path / "l"
    with Store(root, CAMVID11):
        with pytest.raises(DataError, match="in use by another process"):
            Store(root, CAMVID11)
    with pytest.raises(DataError, match="collection has classes camvid11"):
        Store(root, CITYSCAPES19)


def test_disk_full_stops_collection_once_and_runtime_continues(tmp_path, monkeypatch, capsys):
    real = store_mod._write_all
    calls = {"n": 0}

    def flaky(fd, data):
        calls["n"] += 1
        if calls["n"] > 6:  # two samples fit (image, label, manifest line each), then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(store_mod, "_write_all", flaky)
    root = tmp_path / "full"
    col = Collector(root, easy_cfg(), CAMVID11)
    calls["n"] = 0  # count from the first sample on (meta.json is written at start)
    frames_done = 0
    for i in range(30):  # the "inference loop": must never raise or block
        col.offer(*sample(i), t=float(i))
        col.flush()
        frames_done += 1
    st = col.close()
    assert frames_done == 30
    assert st["disk_full"] and st["saved"] == 2 and st["errors"] == 1 and st["ignored"] >= 20
    assert capsys.readouterr().err.count("disk full") == 1
    monkeypatch.setattr(store_mod, "_write_all", real)
    assert verify_collection(root) == {"entries": 2, "problems": [], "orphans": []}


CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_collect_store import easy_cfg, sample
    from pipa_edge.data.classes import CAMVID11
    from pipa_edge.runtime.collect.collector import Collector
    base, max_n = sys.argv[1], int(sys.argv[2])
    results = []
    for n in range(1, max_n + 1):
        pid = os.fork()
        if pid == 0:  # grandchild: die by SIGKILL just before its n-th file-system call
            count = [0]
            def wrap(f):
                def g(*a, **k):
                    count[0] += 1
                    if count[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return f(*a, **k)
                return g
            for name in ("write", "fsync", "replace", "unlink", "truncate"):
                setattr(os, name, wrap(getattr(os, name)))
            col = Collector(os.path.join(base, str(n)), easy_cfg(max_samples=2), CAMVID11)
            for i in range(4):
                col.offer(*sample(i), t=float(i))
                col.flush()
            col.close()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        results.append([n, killed])
        if not killed:
            break
    print(json.dumps(results))
""")


def test_sigkill_at_every_file_operation_leaves_a_verifiable_collection(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PIPA_QUIET="1")
    out = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(REPO / "tests")), str(tmp_path), "120"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results[-1][1] is False, "the run never completed: raise max_n"
    killed = [n for n, k in results if k]
    assert len(killed) > 30  # every write/fsync/rename/unlink of 4 samples with evictions
    saw_orphans = saw_entries = 0
    for n in killed:
        root = tmp_path / str(n)
        if not (root / "meta.json").exists():
            continue  # killed before the collection existed
        rep = verify_collection(root)
        assert rep["problems"] == [], (n, rep)
        saw_orphans += bool(rep["orphans"])
        saw_entries += rep["entries"] > 0
        with Store(root, CAMVID11) as st:  # the next start cleans up
            assert sorted(st.cleaned) == rep["orphans"]
        assert verify_collection(root) == {"entries": rep["entries"], "problems": [], "orphans": []}
    assert saw_orphans > 5 and saw_entries > 10


def test_sigkill_of_a_free_running_collector_process(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_collect_store import easy_cfg, sample
        from pipa_edge.data.classes import CAMVID11
        from pipa_edge.runtime.collect.collector import Collector
        col = Collector(sys.argv[1], easy_cfg(max_samples=5, save_confidence=True), CAMVID11)
        i = 0
        while True:
            col.offer(*sample(i % 50), t=float(i))
            i += 1
            time.sleep(0.001)
    """)
    root = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PIPA_QUIET="1")
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], env=env, cwd=REPO)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            mf = root / "manifest.jsonl"
            if mf.exists() and mf.read_bytes().count(b"\n") >= 12:  # adds and evictions under way
                break
            time.sleep(0.05)
        else:
            pytest.fail("collector subprocess wrote nothing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    rep = verify_collection(root)
    assert rep["problems"] == [] and 1 <= rep["entries"] <= 5
