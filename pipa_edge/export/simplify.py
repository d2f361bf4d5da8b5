"""onnxsim simplification; its numerical self-check failing is an export failure."""

from __future__ import annotations

import contextlib
import io

from pipa_edge.errors import PipaError


class SimplifyError(PipaError):
    """onnxsim could not simplify the graph or its check found a different result."""


def simplify(proto, where: str = "model.onnx", check_n: int = 1, test_shape: list[int] | None = None):
    """Return the simplified ``ModelProto``. Raises :class:`SimplifyError` (one line) when onnxsim
    fails or its ``check_n`` random-input comparison against the original graph does not pass."""
    try:
        import onnxsim
    except ImportError:
        raise SimplifyError(f"{where}: onnxsim is not installed (pip install onnxsim), or pass --no-simplify") from None
    metas = [(p.key, p.value) for p in proto.metadata_props]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxsim prints "Checking 0/1..."
            kw = {"test_input_shapes": {proto.graph.input[0].name: list(test_shape)}} if test_shape else {}
            out, ok = onnxsim.simplify(proto, check_n=check_n, **kw)
    except Exception as e:  # noqa: BLE001 - onnxsim raises RuntimeError/ValueError from C++
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise SimplifyError(f"{where}: onnxsim failed ({type(e).__name__}: {first})") from None
    if not ok:
        raise SimplifyError(f"{where}: onnxsim check failed: the simplified graph differs from the exported one")
    del out.metadata_props[:]
    for k, v in metas:
        e = out.metadata_props.add()
        e.key, e.value = k, v
    return out

