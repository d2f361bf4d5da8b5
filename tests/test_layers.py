"""Imports inside ``pipa_edge/`` point one way (the layer rule in CONTRIBUTING.md, "Layout").

Every ``import`` / ``from … import`` statement of every module is read with ``ast``, including the
lazy ones inside functions, and checked against the rule. The layer of ``pipa_edge.X.…`` is ``X``;
the top-level modules listed in ``COMMON`` (and ``pipa_edge/__init__.py``) form the ``common`` layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pipa_edge"
COMMON = {"config", "errors", "log", "fileio", "threads", "batching", "metrics"}
# layer -> layers it may import (besides itself); "*" = any layer but those in NOT_FROM
ALLOWED = {
    "common": set(),
    "data": {"common"},
    "models": {"data", "common"},
    "adapt": {"models", "data", "common"},
    "train": {"adapt", "models", "data", "common", "runtime"},
    "runtime": {"models", "data", "common"},
    "export": {"models", "data", "common", "runtime"},
    "bench": {"*"},
    "cli": {"*"},
}
NOT_FROM = {"bench": {"cli"}}
# where a layer may reach into runtime: only its public APIs. train scores exported models through the
# backends package; export builds and checks what the runtime loads: the backends (sessions, engines,
# sidecar), the temporal filter the stateful graph must reproduce, and the BN re-fold of on-device
# adaptation (written by the export, read by the runtime). A prefix ending in "." covers its submodules.
RUNTIME_API = {
    "train": {"pipa_edge.runtime.backends"},
    "export": {"pipa_edge.runtime.backends", "pipa_edge.runtime.backends.", "pipa_edge.runtime.temporal",
               "pipa_edge.runtime.bn_adapt", "pipa_edge.runtime.bn_refold"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = ("pipa_edge",) + p.relative_to(PKG).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _targets(mod: str, path: Path, node: ast.AST, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        parts = mod.split(".")[: len(mod.split(".")) - (0 if path.name == "__init__.py" else 1)]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` blocks (never executed, annotations only)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            out.update(id(n) for b in node.body for n in ast.walk(b))
    return out


def import_edges() -> set[tuple[str, str]]:
    """``(importer, imported)`` for every executed import of a ``pipa_edge`` module, lazy ones included."""
    mods, edges = _modules(), set()
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update((mod, t) for t in _targets(mod, path, node, mods)
                             if t.split(".")[0] == "pipa_edge" and t != mod)
    return edges


def layer(mod: str) -> str:
    parts = mod.split(".")
    return "common" if len(parts) == 1 or parts[1] in COMMON else parts[1]


def forbidden(src: str, dst: str) -> bool:
    a, b = layer(src), layer(dst)
    if a == b:
        return False
    if a not in ALLOWED:
        return True  # a new subpackage or top-level module: add it to the rule (and to CONTRIBUTING.md)
    if b in NOT_FROM.get(a, set()) or not ({"*", b} & ALLOWED[a]):
        return True
    return b == "runtime" and a in RUNTIME_API and not any(
        dst == api or (api.endswith(".") and dst.startswith(api)) for api in RUNTIME_API[a])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_walker_sees_lazy_and_relative_imports():
    edges = import_edges()
    assert len(edges) > 300
    # a lazy import inside a function (cli commands import their stage's API in run())
    assert ("pipa_edge.cli.adapt_bn", "pipa_edge.runtime.bn_adapt") in edges
    assert ("pipa_edge.data.build", "pipa_edge.data.datasets.collected") in edges
    assert forbidden("pipa_edge.runtime.pipeline", "pipa_edge.export.onnx")
    assert forbidden("pipa_edge.data.build", "pipa_edge.runtime.collect.store")
    assert forbidden("pipa_edge.export.exporter", "pipa_edge.runtime.pipeline")
    assert forbidden("pipa_edge.train.eval_api", "pipa_edge.runtime.temporal")
    assert not forbidden("pipa_edge.export.tensorrt", "pipa_edge.runtime.backends.trt_common")
    assert forbidden("pipa_edge.bench.api", "pipa_edge.cli.main")
    assert not forbidden("pipa_edge.cli.run", "pipa_edge.runtime.pipeline")
    assert not forbidden("pipa_edge.export.onnx", "pipa_edge.runtime.backends.sidecar")


def test_no_forbidden_layer_edge():
    bad = sorted(f"{a} -> {b}" for a, b in import_edges() if forbidden(a, b))
    assert not bad, "imports against the layer rule (CONTRIBUTING.md, Layout):\n" + "\n".join(bad)


def test_no_import_cycles():
    edges = import_edges()
    mods: dict[str, set[str]] = {}
    layers: dict[str, set[str]] = {}
    for a, b in edges:
        mods.setdefault(a, set()).add(b)
        if layer(a) != layer(b):
            layers.setdefault(layer(a), set()).add(layer(b))
    assert not _cycles(layers), f"cycles between packages: {_cycles(layers)}"
    assert not _cycles(mods), f"module import cycles: {_cycles(mods)}"
