"""Re-fold new BatchNorm statistics into an exported (BN-folded) ONNX graph with NumPy alone.

Torch-free: the device path (``pipa-edge adapt-bn``) imports only numpy and onnx from here.

**The rule.** A BN layer computes ``y = s z + t`` with ``s = γ/√(σ² + ε)`` and ``t = β − μ s``. The
export folds it into the tensors that produce or consume it: a preceding convolution's weights
become ``W_f = s W`` (per output channel) and its bias ``b_f = s b + t`` (``b = 0`` without a
bias), the SegFormer decoder fold (:mod:`pipa_edge.export.fold`) multiplies four projection
weights by ``s`` and adds ``t`` into one bias, a BN left as a node keeps ``μ``/``σ²`` as inputs.
With new statistics ``μ', σ'²`` (``s'``, ``t'``, ``r = s'/s``) every such tensor is updated
exactly, without knowing the unfolded ``W`` or ``b``::

    scale:  W' = s' W            = r ⊙ W_f                 (along the channel axis)
    shift:  b' = s' b + t'       = r ⊙ (b_f − t) + t'
    mean / var (a BN node kept):   μ', σ'²

**Which tensors.** :func:`infer_targets` finds them at export time by exporting the graph twice,
once with randomly perturbed statistics, and explaining every initializer that changed by
exactly one ``(layer, role, axis)``; anything unexplained refuses (no companion is written).
The targets are stored as constant *uses* (node index, input index) with the companion
(:mod:`.bn_adapt`), so a constant the export shared between layers can be split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROLES = ("scale", "shift", "mean", "var")


@dataclass
class BNLayer:
    """One BatchNorm layer: affine, eps, current running statistics and where it lives in the graph."""

    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    targets: list[dict] = field(default_factory=list)  # {"node": i, "input": j, "role": ROLES, "axis": int}

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])


def scale_shift(gamma, beta, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` in float64."""
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    return s, np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * s


def _bcast(v: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    view = [1] * len(shape)
    view[axis] = -1
    return v.reshape(view)


def update_tensor(a: np.ndarray, role: str, axis: int, layer: BNLayer, mean1, var1) -> np.ndarray:
    """``a`` (a folded tensor of ``layer`` with its current statistics) with ``mean1``/``var1``."""
    if role == "mean":
        return np.asarray(mean1, a.dtype).reshape(a.shape)
    if role == "var":
        return np.asarray(var1, a.dtype).reshape(a.shape)
    s0, t0 = scale_shift(layer.gamma, layer.beta, layer.mean, layer.var, layer.eps)
    s1, t1 = scale_shift(layer.gamma, layer.beta, mean1, var1, layer.eps)
    r = np.divide(s1, s0, out=np.ones_like(s1), where=s0 != 0)  # γ = 0: the channel is constant β
    a64 = a.astype(np.float64)
    if role == "scale":
        out = a64 * _bcast(r, a.shape, axis)
    elif role == "shift":
        if a.size != layer.channels:
            raise ValueError(f"shift tensor of {a.size} values for a {layer.channels}-channel layer")
        out = ((a64.reshape(-1) - t0) * r + t1).reshape(a.shape)
    else:
        raise ValueError(f"unknown role {role!r}")
    return out.astype(a.dtype)


# ---- the graph's constants, addressed by use: (node index, input index) ----

def graph_tensors(proto) -> dict[str, object]:
    """``name → TensorProto`` of every float initializer and Constant-node value (main graph)."""
    from onnx import TensorProto

    out: dict[str, object] = {}
    for t in proto.graph.initializer:
        if t.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
            out[t.name] = t
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
                    out[node.output[0]] = a.t
    return out


def const_uses(proto, tensors: dict) -> list[tuple[int, int, str]]:
    """``(node index, input index, constant name)`` for every node input fed by a float constant."""
    return [(i, j, name) for i, node in enumerate(proto.graph.node) for j, name in enumerate(node.input)
            if name in tensors]


def same_structure(p0, p1, t0: dict, t1: dict) -> bool:
    """Same ops and wiring; constants may be named (and shared) differently."""
    n0, n1 = p0.graph.node, p1.graph.node
    if len(n0) != len(n1):
        return False
    for a, b in zip(n0, n1):
        if a.op_type != b.op_type or len(a.input) != len(b.input) or (a.op_type != "Constant"
                                                                       and list(a.output) != list(b.output)):
            return False
        for x, y in zip(a.input, b.input):
            if (x in t0) != (y in t1) or (x not in t0 and x != y):
                return False
    return True


def refold(proto, layers: list[BNLayer], new_stats: list[tuple[np.ndarray, np.ndarray]]):
    """A copy of ``proto`` with every layer's targets updated to ``new_stats[i] = (mean, var)``.

    A constant used only by one layer's targets (one role) is updated in place; one shared with
    other uses gets a fresh initializer per target use (the others keep the old value)."""
    from onnx import ModelProto, numpy_helper

    out = ModelProto()
    out.CopyFrom(proto)
    tensors = graph_tensors(out)
    n_uses: dict[str, int] = {}
    for _, _, name in const_uses(out, tensors):
        n_uses[name] = n_uses.get(name, 0) + 1
    groups: dict[str, list] = {}
    for k, layer in enumerate(layers):
        for tg in layer.targets:
            node = out.graph.node[int(tg["node"])]
            name = node.input[int(tg["input"])]
            if name not in tensors:
                raise KeyError(f"BN layer {layer.name!r}: input {tg['input']} of node {tg['node']} "
                               f"({node.op_type}) is not a constant")
            groups.setdefault(name, []).append((k, tg))
    for name, items in groups.items():
        a = numpy_helper.to_array(tensors[name])
        kinds = {(k, tg["role"], int(tg.get("axis", 0))) for k, tg in items}
        if len(kinds) == 1 and len(items) == n_uses[name]:
            k, role, axis = next(iter(kinds))
            tensors[name].CopyFrom(numpy_helper.from_array(
                update_tensor(a, role, axis, layers[k], *new_stats[k]), tensors[name].name))
            continue
        for k, tg in items:
            role, axis = tg["role"], int(tg.get("axis", 0))
            fresh = f"{name}__bn{k}_{role}{axis}"
            if fresh not in tensors:
                t = numpy_helper.from_array(update_tensor(a, role, axis, layers[k], *new_stats[k]), fresh)
                out.graph.initializer.append(t)
                tensors[fresh] = out.graph.initializer[-1]
            out.graph.node[int(tg["node"])].input[int(tg["input"])] = fresh
    return out


def _matches(pred: np.ndarray, want: np.ndarray) -> bool:
    scale = float(np.abs(want).max()) if want.size else 0.0
    return bool(np.allclose(pred, want, rtol=1e-4, atol=1e-5 * scale + 1e-7))


def _candidates(a0: np.ndarray, a1: np.ndarray, layers: list[BNLayer], stats1) -> list[dict]:
    found = []
    for i, (layer, (m1, v1)) in enumerate(zip(layers, stats1)):
        c = layer.channels
        if a0.size == c:
            if _matches(a0.reshape(-1), layer.mean) and _matches(a1.reshape(-1), m1):
                found.append({"layer": i, "role": "mean", "axis": 0})
            if _matches(a0.reshape(-1), layer.var) and _matches(a1.reshape(-1), v1):
                found.append({"layer": i, "role": "var", "axis": 0})
            if _matches(update_tensor(a0, "shift", 0, layer, m1, v1), a1):
                found.append({"layer": i, "role": "shift", "axis": 0})
        for ax, n in enumerate(a0.shape):
            if n == c and _matches(update_tensor(a0, "scale", ax, layer, m1, v1), a1):
                found.append({"layer": i, "role": "scale", "axis": ax})
    return found


def _use_values(proto) -> list[tuple[int, int, np.ndarray]]:
    from onnx import numpy_helper

    tensors = graph_tensors(proto)
    cache = {name: numpy_helper.to_array(t) for name, t in tensors.items()}
    return [(i, j, cache[name]) for i, j, name in const_uses(proto, tensors)]


def infer_targets(proto0, proto1, layers: list[BNLayer], stats1) -> list[str]:
    """Fill ``layers[i].targets`` from two exports of one model: ``proto0`` with the layers' statistics,
    ``proto1`` with ``stats1`` (distinct random perturbations). Returns the problems found (empty =
    every changed constant use is explained by exactly one layer and role, and re-folding ``proto0``
    with ``stats1`` reproduces ``proto1``'s constants)."""
    if not same_structure(proto0, proto1, graph_tensors(proto0), graph_tensors(proto1)):
        return ["the two exports differ in structure, not only in constants"]
    for layer in layers:
        layer.targets = []
    problems = []
    for (i, j, a0), (_, _, a1) in zip(_use_values(proto0), _use_values(proto1)):
        if a0.shape != a1.shape:
            problems.append(f"node {i} input {j}: shape differs between the exports")
            continue
        if np.array_equal(a0, a1):
            continue
        cands = _candidates(a0, a1, layers, stats1)
        if len(cands) != 1:
            problems.append(f"node {i} ({proto0.graph.node[i].op_type}) input {j} {list(a0.shape)}: "
                            f"{'no' if not cands else len(cands)} BN explanation(s)")
            continue
        c = cands[0]
        layers[c["layer"]].targets.append({"node": i, "input": j, "role": c["role"], "axis": c["axis"]})
    if problems:
        return problems
    unused = [la.name for la in layers if not la.targets]
    if unused:
        return [f"BN layer(s) with no effect on the exported graph: {', '.join(unused[:3])}"]
    for (i, j, a), (_, _, want) in zip(_use_values(refold(proto0, layers, stats1)), _use_values(proto1)):
        if not _matches(a, want):
            problems.append(f"node {i} input {j}: re-folded values differ from the perturbed export")
    return problems
