"""The on-device collector: ``offer()`` from the inference loop, select + write on a worker thread.

::

    col = Collector("runs/collect/dusk", cfg, classes, model_info={"sha256": ..., "backend": "tensorrt"})
    for frame, probs, t in stream:          # inference thread
        col.offer(frame, probs, t)          # never blocks: a full queue drops the offer (counted)
    col.close()                             # processes what is queued, closes the store

``offer`` only copies the frame (``copy_frames``; the probabilities too with ``copy_probs``) and
enqueues them. The worker thread (lowered
priority on Linux) runs :class:`~pipa_edge.runtime.collect.select.Selector`, encodes the files and
writes them through :class:`~pipa_edge.runtime.collect.store.Store`. When the disk is full
(``ENOSPC``/``EDQUOT``) collection stops with one warning; ``offer`` keeps returning at once, so
the segmentation runs on. Other write errors are counted and warned about once.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from pipa_edge.data.classes import ClassSet
from pipa_edge.log import stage, warn
from pipa_edge.runtime.collect.config import CollectConfig
from pipa_edge.runtime.collect.select import Decision, Selector
from pipa_edge.runtime.collect.store import DISK_FULL, Store

_STOP = object()


def encode_sample(frame: np.ndarray, dec: Decision, cfg: CollectConfig) -> dict[str, tuple[str, bytes]]:
    """Frame (JPEG/PNG), pseudo-label PNG and optional confidence PNG, all at the saved image size."""
    st = cfg.storage
    img = frame
    if st.image_max_side and max(img.shape[:2]) > st.image_max_side:
        s = st.image_max_side / max(img.shape[:2])
        img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    bgr = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    if st.image_format == "jpg":
        ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, st.jpeg_quality])
    else:
        ok, enc = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("image encoding failed")
    blobs = {"image": ("." + st.image_format, enc.tobytes())}
    label = dec.label
    if label.shape != (h, w):
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    blobs["label"] = (".png", cv2.imencode(".png", label)[1].tobytes())
    if st.save_confidence and dec.conf is not None:
        conf = np.clip(dec.conf * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if conf.shape != (h, w):
            conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_LINEAR)
        blobs["conf"] = (".png", cv2.imencode(".png", conf)[1].tobytes())
    return blobs


class Collector:
    """Selects frames worth keeping and stores them with pseudo-labels in ``out_dir``.

    Parameters: ``classes`` — the model's class set (checked against an existing collection);
    ``model_info`` — what identifies the model (``sha256``, ``path``, ``backend``, ...), copied into
    each manifest entry; ``source`` — the stream URI, also recorded.
    """

    def __init__(self, out_dir: str | Path, cfg: CollectConfig | None, classes: ClassSet,
                 model_info: dict | None = None, source: str = ""):
        self.cfg = cfg or CollectConfig()
        self.classes = classes
        self.model_info = dict(model_info or {})
        from pipa_edge.runtime.uri import redact

        self.source = redact(str(source))  # no credentials in the manifest
        self.store = Store(out_dir, classes)
        if self.store.cleaned:
            warn("collect", f"{out_dir}: removed {len(self.store.cleaned)} orphan file(s) left by an interrupted run")
        self.selector = Selector(self.cfg, classes)
        self._hashes = self.store.hashes()
        self._counts = self.store.class_counts(self.cfg.class_presence)
        self._q: queue.Queue = queue.Queue(maxsize=self.cfg.queue_size)
        # counters written by the inference thread ...
        self.n_offered = 0
        self.n_dropped = 0
        self.n_ignored = 0
        self.offer_seconds = 0.0
        # ... and by the worker thread
        self.n_analysed = 0
        self.n_saved = 0
        self.n_evicted = 0
        self.n_errors = 0
        self.rejected: Counter = Counter()
        self.worker_seconds = 0.0
        self.disk_full = False
        self._warned: set[str] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pipa-collect", daemon=True)
        self._thread.start()

    # -- inference thread ---------------------------------------------------------------------
    def offer(self, frame_rgb: np.ndarray, probs: np.ndarray, t: float | None = None, kind: str = "probs") -> None:
        """Hand one frame ``(H, W, 3) uint8`` RGB and its probabilities ``(K, h, w) float32`` over
        (``kind="logits"``: raw scores, the softmax then runs on the worker thread).

        Returns at once; drops the offer when the worker is behind (``stats()["dropped"]``)."""
        t0 = time.perf_counter()
        self.n_offered += 1
        if self._closed or self.disk_full:
            self.n_ignored += 1
        else:
            if t is None:
                t = time.monotonic()
            if kind not in ("probs", "logits"):
                raise ValueError(f"offer: kind must be 'probs' or 'logits', not {kind!r}")
            if self.cfg.copy_frames:
                frame_rgb = np.array(frame_rgb, copy=True)
            if self.cfg.copy_probs:
                probs = np.array(probs, copy=True)
            try:
                self._q.put_nowait((frame_rgb, probs, float(t), kind == "logits"))
            except queue.Full:
                self.n_dropped += 1
        self.offer_seconds += time.perf_counter() - t0

    # -- worker thread --------------------------------------------------------------------------
    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn("collect", msg)

    def _run(self) -> None:
        if self.cfg.worker_nice and hasattr(os, "setpriority"):
            try:  # Linux: a thread id names the thread, so only the worker gets a lower priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.cfg.worker_nice)
            except OSError:
                pass
        while True:
            item = self._q.get()
            try:
                if item is _STOP:
                    return
                if not self.disk_full:
                    t0 = time.perf_counter()
                    self._process(*item)
                    self.worker_seconds += time.perf_counter() - t0
            except OSError as e:
                self.n_errors += 1
                if e.errno in DISK_FULL:
                    self.disk_full = True
                    self._warn_once("disk_full", f"{self.store.root}: disk full ({e.strerror}); collection "
                                    f"stopped after {self.n_saved} sample(s), segmentation continues")
                else:
                    self._warn_once(f"oserror{e.errno}", f"{self.store.root}: cannot write a sample ({e}); "
                                    "skipping it (further errors of this kind are only counted)")
            except Exception as e:  # noqa: BLE001 - a collector bug must never stop the segmentation
                self.n_errors += 1
                self._warn_once(type(e).__name__, f"collector error, sample skipped: {type(e).__name__}: {e}")
            finally:
                self._q.task_done()

    def _process(self, frame: np.ndarray, probs: np.ndarray, t: float, logits: bool = False) -> None:
        cfg = self.cfg
        if logits:
            e = np.exp(probs - probs.max(axis=0, keepdims=True))
            probs = e / e.sum(axis=0, keepdims=True)
        dec = self.selector.decide(frame, probs, t, self._hashes if cfg.dedup.enabled else None, self._counts)
        self.n_analysed += 1
        if not dec.accept:
            self.rejected[dec.reason] += 1
            return
        blobs = encode_sample(frame, dec, cfg)
        size = sum(len(b) for _, b in blobs.values())
        st = cfg.storage
        if st.max_bytes is not None and size > st.max_bytes:
            self.rejected["too_large"] += 1
            return
        evicted = self.store.make_room(size, st.max_bytes, st.max_samples, st.eviction, cfg.class_presence)
        self.n_evicted += len(evicted)
        info = {"t": round(t, 4), "source": self.source, "model": self.model_info,
                "backend": self.model_info.get("backend", ""), "frame_size": list(frame.shape[:2]),
                "pixels": int(dec.label.size), **dec.info}
        self.store.add(blobs, info)
        self.n_saved += 1
        self._hashes = self.store.hashes()
        self._counts = self.store.class_counts(cfg.class_presence)

    # -- control --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Block until every queued offer is processed."""
        self._q.join()

    def close(self) -> dict:
        """Process what is queued, stop the worker, close the store; returns :meth:`stats`."""
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join()
            self.store.close()
        return self.stats()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stats(self) -> dict:
        n = max(self.n_offered, 1)
        return {"offered": self.n_offered, "dropped": self.n_dropped, "ignored": self.n_ignored,
                "analysed": self.n_analysed, "saved": self.n_saved, "evicted": self.n_evicted,
                "errors": self.n_errors, "rejected": dict(self.rejected), "disk_full": self.disk_full,
                "samples": len(self.store.live), "bytes": int(self.store.total_bytes),
                "offer_ms_mean": 1e3 * self.offer_seconds / n,
                "worker_ms_mean": 1e3 * self.worker_seconds / max(self.n_analysed, 1)}

    def summary(self) -> str:
        s = self.stats()
        rej = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "none"
        return (f"{s['saved']} saved ({s['samples']} in folder, {s['bytes'] / 1e6:.1f} MB), {s['analysed']} analysed, "
                f"{s['dropped']} dropped (worker busy), {s['evicted']} evicted; rejected: {rej}")

    def log_summary(self) -> None:
        stage("collect", self.summary())
