"""``pipa-edge run … --collect DIR --adapt-every N``: BN re-estimation in the stream, swapped in between frames.

After every ``N`` newly collected frames a background thread runs :func:`~pipa_edge.runtime.bn_adapt.
adapt_bn_onnx` on the collection (always from the *original* model, whose BN statistics graph does not
depend on the running statistics, so adaptations do not compound), writes ``DIR-adapted/<stem>.a<k>.onnx``,
loads it as a new backend and runs it once. The inference thread calls :meth:`AdaptSwap.between_frames`
before each frame; when a new backend is ready it replaces the old one there — one assignment between
two frames, so no frame is dropped and no frame sees half a model — and the old one is closed. A failed
adaptation or load keeps the current model and logs why; the stream never stops for it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pipa_edge import log

STAGE = "adapt-bn"


class AdaptSwap:
    def __init__(self, model: str | Path, collect_dir: str | Path, every: int, collector, *, backend: str | None = None,
                 backend_opts: dict | None = None, out_dir: str | Path | None = None, num_frames: int = 200,
                 batch_size: int = 8, min_frames: int = 8):
        from pipa_edge.errors import ConfigError
        from pipa_edge.runtime.bn_adapt import load_companion

        self.model = Path(model)
        if self.model.suffix.lower() != ".onnx":
            raise ConfigError(f"--adapt-every: {self.model} is not an ONNX model (adapt an exported .onnx; an "
                              "engine is rebuilt from it with `pipa-edge adapt-bn --engine`)")
        if every < min_frames:
            raise ConfigError(f"--adapt-every {every}: need at least {min_frames} new frames per re-estimation")
        load_companion(self.model)  # fail at start, in one line, when the model cannot be adapted
        self.collect_dir = Path(collect_dir)
        self.out_dir = Path(out_dir) if out_dir else self.collect_dir.with_name(self.collect_dir.name + "-adapted")
        self.every, self.collector = int(every), collector
        self.backend_name, self.backend_opts = backend, dict(backend_opts or {})
        self.kw = {"num_frames": num_frames, "batch_size": batch_size, "min_frames": min_frames}
        self._last = 0
        self._job: threading.Thread | None = None
        self._ready = None  # (backend, path) waiting for the swap
        self._lock = threading.Lock()
        self._owned = []  # backends this object loaded (closed on close())
        self._closed = False  # set by close(): a late re-estimation closes its backend instead of publishing
        self.swaps, self.failures, self.history = 0, 0, []

    def _saved(self) -> int:
        return int(getattr(self.collector, "n_saved", 0))

    def between_frames(self, backend):
        """Called by the inference thread before each frame: returns the backend to use for it."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            new, path = ready
            if new.meta.input_size != backend.meta.input_size or new.meta.output != backend.meta.output:
                log.warn(STAGE, f"{path.name}: input/output differ from the running model; kept the current model")
                with self._lock:
                    self._discard(new)
            else:
                old = backend
                backend = new
                self.swaps += 1
                log.ok(STAGE, f"swapped in {path.name} between frames (adaptation {self.swaps})")
                with self._lock:
                    was_owned = old in self._owned
                    if was_owned:
                        self._owned.remove(old)
                if was_owned:
                    old.close()
        if not self._closed and (self._job is None or not self._job.is_alive()):
            n = self._saved()
            if n - self._last >= self.every:
                self._last = n
                self._job = threading.Thread(target=self._adapt, args=(n,), name="pipa-adapt-bn", daemon=True)
                self._job.start()
        return backend

    def _adapt(self, n_saved: int) -> None:
        from pipa_edge.runtime.bn_adapt import adapt_bn_onnx

        k = len(self.history) + 1
        dst = self.out_dir / f"{self.model.name[:-5]}.a{k}.onnx"
        try:
            rep = adapt_bn_onnx(self.model, self.collect_dir, dst, show_progress=False, **self.kw)
            backend = self._load(dst)
        except Exception as e:  # noqa: BLE001 - any failure keeps the running model
            self.failures += 1
            first = (str(e).strip().splitlines() or [""])[0][:200]
            log.warn(STAGE, f"re-estimation after {n_saved} collected frames failed; kept the current model "
                            f"({type(e).__name__}: {first})")
            self.history.append({"saved": n_saved, "ok": False, "error": first})
            return
        c = rep["change"]
        self.history.append({"saved": n_saved, "ok": True, "model": str(dst), "frames": rep["frames"]["count"],
                             "seconds": rep["seconds"], "mean_abs_dmean_sd": c["mean_abs_dmean_sd"],
                             "mean_abs_dlogvar": c["mean_abs_dlogvar"]})
        log.stage(STAGE, f"re-estimated on {rep['frames']['count']} collected frames in {rep['seconds']:.1f}s "
                         f"(mean |Δlog σ²| {c['mean_abs_dlogvar']:.3f}) → {dst.name}; swapping at the next frame")
        with self._lock:
            if self._closed:  # close() gave up waiting: nobody will swap this in
                self._discard(backend)
                return
            if self._ready is not None:  # never consumed (stream ended): drop the older one
                self._discard(self._ready[0])
            self._ready = (backend, dst)
        self._prune(k - 2)

    def _prune(self, k: int) -> None:
        """Delete adaptation ``k``'s files (long since swapped out): the folder keeps the last two."""
        from pipa_edge.runtime.bn_adapt import companion_paths

        if k < 1:
            return
        old = self.out_dir / f"{self.model.name[:-5]}.a{k}.onnx"
        for p in (old, old.with_name(old.name + ".json"), companion_paths(old)[0]):
            p.unlink(missing_ok=True)

    def _load(self, path: Path):
        import numpy as np

        from pipa_edge.runtime.backends import load_backend

        b = load_backend(path, backend=self.backend_name, **self.backend_opts)
        h, w = b.meta.input_size
        try:
            b.infer(np.zeros((1, h, w, 3), np.uint8))  # fails here, not in the stream
        except BaseException:
            b.close()
            raise
        with self._lock:
            self._owned.append(b)
        return b

    def _discard(self, b) -> None:
        """Close a loaded backend that will never run (caller holds ``_lock``)."""
        if b in self._owned:
            self._owned.remove(b)
        b.close()

    def close(self, timeout: float = 30.0) -> dict:
        """Wait for a running re-estimation, release what this object loaded; a summary dict."""
        if self._job is not None:
            self._job.join(timeout)
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, None
            owned, self._owned = list(self._owned), []
        if ready is not None and ready[0] not in owned:
            ready[0].close()
        for b in owned:
            b.close()
        if self.history:
            log.ok(STAGE, f"in-stream re-estimation: {self.swaps} swap(s), {self.failures} failure(s); models in "
                          f"{self.out_dir}")
        return {"every": self.every, "swaps": self.swaps, "failures": self.failures, "history": self.history}


def prepare(model, opts) -> AdaptSwap:
    """Validate ``--adapt-every`` and build its :class:`AdaptSwap` (``opts``: the run options) before the
    run opens anything, so a ConfigError leaks nothing; the run sets ``.collector`` and ``runner.swap``."""
    from pipa_edge.errors import ConfigError

    if not opts.collect:
        raise ConfigError("--adapt-every needs --collect DIR (the frames it re-estimates on)")
    path = model if isinstance(model, (str, Path)) else getattr(model, "path", None)
    if path is None:
        raise ConfigError("--adapt-every: the model must be an exported .onnx file")
    return AdaptSwap(path, opts.collect, opts.adapt_every, None, backend=opts.backend,
                     backend_opts=opts.backend_opts)
