"""ONNX Runtime backend: CPU by default; CUDA / TensorRT execution providers when installed.

Metadata comes from the sidecar ``<model>.onnx.json`` (or, failing that, the copy embedded in
the ONNX ``metadata_props``). The sidecar's ``file_sha256`` is checked against the file, and the
graph's input/output signature against the metadata, so a mismatched pair fails at load with one
line instead of producing garbage at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipa_edge.errors import BackendUnavailable, ModelFileError
from pipa_edge.runtime.backends.base import Backend, ModelMeta
from pipa_edge.runtime.backends.sidecar import ONNX_META_KEY, file_sha256, meta_from_json, read_sidecar

_EP = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
       "openvino": "OpenVINOExecutionProvider"}


def resolve_providers(providers, available: list[str]) -> list[str]:
    """``None``/"auto" → CUDA (if present) then CPU; names may be short (``cuda``) or full EP names."""
    if providers in (None, "auto"):
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    out = []
    for p in providers:
        full = _EP.get(p.lower(), p)
        if full not in available:
            raise BackendUnavailable(f"onnxruntime: execution provider '{p}' is not available here "
                                     f"(available: {', '.join(available)})")
        out.append(full)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


def make_session(path: str | Path, providers=None, threads: int | None = None, spin: bool | None = None):
    """``onnxruntime.InferenceSession`` with the runtime's options: ``threads`` intra-op threads
    (default ``OMP_NUM_THREADS``, else onnxruntime's), one inter-op thread, warnings off;
    ``providers`` as :func:`resolve_providers` takes them. ``spin``: whether idle intra-op threads
    busy-wait for the next parallel section (``session.intra_op.allow_spinning``; ``None`` =
    onnxruntime's default, which spins). Errors are onnxruntime's own."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    if spin is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so,
                                providers=resolve_providers(providers, ort.get_available_providers()))


def check_signature(meta: ModelMeta, inp, out, where: str) -> None:
    """Graph input/output vs metadata: dtype, layout, static sizes."""
    shape = list(inp.shape)
    if meta.input_format == "uint8_nhwc":
        ok = inp.type == "tensor(uint8)" and len(shape) == 4 and shape[3] == 3
        hw = shape[1:3]
    else:
        ok = inp.type == "tensor(float)" and len(shape) == 4 and shape[1] == 3
        hw = shape[2:4]
    if not ok:
        raise ModelFileError(f"{where}: graph input {inp.name} {inp.type}{shape} does not match the metadata "
                             f"input_format '{meta.input_format}'")
    for got, want in zip(hw, meta.input_size):
        if isinstance(got, int) and got != want:
            raise ModelFileError(f"{where}: graph input size {hw} differs from the metadata input_size "
                                 f"{list(meta.input_size)}")
    want_out = "tensor(uint8)" if meta.output == "labels" else "tensor(float)"
    if out.type != want_out:
        raise ModelFileError(f"{where}: graph output {out.name} is {out.type} but the metadata says "
                             f"output '{meta.output}' ({want_out})")


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, *, providers=None, threads: int | None = None, verify: bool = True,
                 meta: ModelMeta | None = None, spin: bool | None = None, **_ignored):
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise ModelFileError(f"{p}: model file not found")
        if meta is None:
            meta = read_sidecar(p, required=False)
            if meta is not None and verify:
                want = meta.extra.get("file_sha256")
                if want and want != file_sha256(p):
                    raise ModelFileError(f"{p}: file does not match its sidecar (sha256 differs: the model was "
                                         "replaced or truncated after export)")
        provs = resolve_providers(providers, ort.get_available_providers())
        try:
            self.session = make_session(p, provs, threads, spin)
        except Exception as e:  # noqa: BLE001 - InvalidProtobuf, Fail, NoSuchFile ...
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise ModelFileError(f"{p}: not a loadable ONNX model ({type(e).__name__}: {first})") from None
        if meta is None:
            embedded = self.session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
            if embedded is None:
                raise ModelFileError(f"{p}: no metadata (no sidecar {p.name}.json and none embedded); "
                                     "export it with `pipa-edge export`")
            meta = meta_from_json(embedded, f"{p} (embedded metadata)")
        self.inp = self.session.get_inputs()[0]
        self.out = self.session.get_outputs()[0]
        check_signature(meta, self.inp, self.out, str(p))
        self.meta = meta
        self.path = p
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        self._in_name, self._out_names = self.inp.name, [self.out.name]
        b = self.inp.shape[0]
        self.static_batch = b if isinstance(b, int) else None
        self._init_state(meta.extra.get("stateful"), str(p))

    # ---- stateful graphs (temporal filter inside: frame + state in, labels + state out) ----
    def _init_state(self, spec: dict | None, where: str) -> None:
        self.stateful = bool(spec)
        self._state: dict[str, np.ndarray] = {}
        if not spec:
            return
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        s_in, s_out = list(spec.get("state_inputs", [])), list(spec.get("state_outputs", []))
        missing = [n for n in s_in if n not in ins] + [n for n in s_out if n not in outs]
        if missing or len(s_in) != len(s_out) or any(not isinstance(d, int) for n in s_in for d in ins[n].shape):
            raise ModelFileError(f"{where}: metadata says stateful but the graph's state tensors do not match "
                                 f"(missing or dynamic: {', '.join(missing) or 'shapes'})")
        init = list(spec.get("state_init") or [0] * len(s_in))  # first-frame value of each state tensor
        self._state_specs = [(n, tuple(ins[n].shape), ins[n].type, v) for n, v in zip(s_in, init)]
        self._out_names = [self.out.name, *s_out]
        self.reset_state()

    def reset_state(self) -> None:
        """Start a new stream: EMA zeros, label/pending -1 ("none yet"), count 0. No-op if stateless."""
        if not self.stateful:
            return
        self._state = {}
        for name, shape, typ, value in self._state_specs:
            self._state[name] = np.full(shape, value, np.float32 if typ == "tensor(float)" else np.int32)

    def _infer_stateful(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self.static_batch:
            raise ValueError(f"{self.path.name}: stateful graph takes batch {self.static_batch}, got {x.shape[0]}")
        outs = self.session.run(self._out_names, {self._in_name: x, **self._state})
        self._state = dict(zip(self._state, outs[1:]))
        return outs[0]

    def infer(self, frames: np.ndarray) -> np.ndarray:
        x = self.preprocess(frames)
        if self.stateful:
            return self._infer_stateful(x)
        sb = self.static_batch
        if sb is None or x.shape[0] == sb:
            return self.session.run(self._out_names, {self._in_name: x})[0]
        if x.shape[0] % sb:
            raise ValueError(f"{self.path.name}: batch {x.shape[0]} is not a multiple of the graph's static batch {sb}")
        return np.concatenate([self.session.run(self._out_names, {self._in_name: x[i:i + sb]})[0]
                               for i in range(0, x.shape[0], sb)])

    def close(self) -> None:
        self.session = None
