"""The metadata sidecar: ``<model file>.json`` = ``ModelMeta.to_dict()`` (+ ``extra``).

Written next to every exported ONNX/engine (``model.onnx`` → ``model.onnx.json``). It is never
prepended to the file itself, so ``trtexec``/DeepStream/Netron read the model unchanged. ONNX
exports also carry the same JSON in the model's ``metadata_props`` under :data:`ONNX_META_KEY`,
so an ONNX file that lost its sidecar still loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pipa_edge.errors import ModelFileError
from pipa_edge.runtime.backends.base import ModelMeta

SIDECAR_FORMAT = "pipa-edge-sidecar/1"
ONNX_META_KEY = "pipa_edge.meta"


def sidecar_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; sidecars are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_sidecar(model_path: str | Path, meta: ModelMeta) -> Path:
    """Write ``<model>.json``; ``meta.extra`` gets the sidecar format tag."""
    d = meta.to_dict()
    d["extra"] = {"format": SIDECAR_FORMAT, **d.get("extra", {})}
    return write_json_atomic(sidecar_path(model_path), d)


def meta_from_json(text: str, where: str) -> ModelMeta:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{where}: sidecar is not valid JSON (line {e.lineno})") from None
    if not isinstance(d, dict):
        raise ModelFileError(f"{where}: sidecar must hold a JSON object")
    try:
        return ModelMeta.from_dict(d)
    except Exception as e:  # noqa: BLE001 - KeyError/TypeError/ConfigError from a hand-edited file
        raise ModelFileError(f"{where}: sidecar is incomplete or invalid ({type(e).__name__}: {e})") from None


def read_sidecar(model_path: str | Path, required: bool = True) -> ModelMeta | None:
    sp = sidecar_path(model_path)
    if not sp.is_file():
        if required:
            raise ModelFileError(f"{model_path}: metadata sidecar {sp.name} not found next to it "
                                 "(re-export with `pipa-edge export`)")
        return None
    return meta_from_json(sp.read_text(), str(sp))
