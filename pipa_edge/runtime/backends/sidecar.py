"""The metadata sidecar: ``<model file>.json`` = ``ModelMeta.to_dict()`` (+ ``extra``).

Written next to every exported ONNX/engine (``model.onnx`` → ``model.onnx.json``). It is never
prepended to the file itself, so ``trtexec``/DeepStream/Netron read the model unchanged. ONNX
exports also carry the same JSON in the model's ``metadata_props`` under :data:`ONNX_META_KEY`,
so an ONNX file that lost its sidecar still loads (:func:`save_onnx` writes both; the export and
``pipa-edge adapt-bn`` use it).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipa_edge.errors import ModelFileError
from pipa_edge.fileio import atomic_write, file_sha256, guard_write
from pipa_edge.runtime.backends.base import ModelMeta

SIDECAR_FORMAT = "pipa-edge-sidecar/1"
ONNX_META_KEY = "pipa_edge.meta"


def sidecar_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def write_json_atomic(path: str | Path, data: dict) -> Path:
    def dump(f) -> None:
        json.dump(data, f, indent=2)
        f.write("\n")

    return atomic_write(path, dump, binary=False)


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


def embed_meta(proto, meta: ModelMeta) -> None:
    d = meta.to_dict()
    d["extra"] = {k: v for k, v in d["extra"].items() if k not in ("file_sha256", "onnx_sha256")}
    for prop in list(proto.metadata_props):
        if prop.key == ONNX_META_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(d)


def save_onnx(proto, path: str | Path, meta: ModelMeta) -> ModelMeta:
    """Embed ``meta``, write the file, then the sidecar with the file's sha256. Returns the final meta."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    embed_meta(proto, meta)
    tmp = path.with_name(f".{path.name}.tmp")
    with guard_write(path, f"the previous {path.name} is kept" if path.exists() else "nothing was written"):
        try:
            onnx.save(proto, str(tmp))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    sha = file_sha256(path)
    meta.extra.update(file_sha256=sha, onnx_sha256=sha, opset=opset_of(proto))
    write_sidecar(path, meta)
    return meta


def opset_of(proto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
