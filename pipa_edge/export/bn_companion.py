"""Export-time (workstation, torch): what on-device BatchNorm re-estimation needs, next to the ONNX.

For ``model.onnx`` with BN layers the export writes

- ``model.bnstats.onnx`` — the *statistics graph*: the same network from the same input (same
  ``input_format``, so the runtime's preprocessing applies) with every BN layer in training form
  (normalised by the batch's own statistics, as ``pipa-edge adabn`` runs it) and, as outputs, each
  layer's batch mean and unbiased batch variance of its input (``mean_i``, ``var_i``, per channel).
  The batch dimension is dynamic. It does not depend on the running statistics, so it serves every
  re-adapted model;
- ``model.bnadapt.npz`` — per layer: γ, β, ε, the running statistics the deployable graph was folded
  with, and its *targets*: the names and roles of the deployable graph's constants that carry the
  layer (:mod:`pipa_edge.runtime.bn_refold`), plus the deployable file's sha256.

The targets come from a second export of the model with randomly perturbed statistics; the
re-folded graph must then reproduce that export's constants, and it passes the export's parity gate
against the perturbed PyTorch model. If anything is unexplained, no companion is written (a warning
says why): the export itself is unaffected.
"""

from __future__ import annotations

import copy
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipa_edge import log
from pipa_edge.runtime.bn_adapt import companion_paths, save_companion
from pipa_edge.runtime.bn_refold import BNLayer, infer_targets, refold

STAGE = "export"


class _StatBN(nn.Module):
    """A BN layer in training form that records its input's batch mean and unbiased variance."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.weight = bn.weight if bn.affine else None
        self.bias = bn.bias if bn.affine else None
        self.eps = float(bn.eps)
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0, *range(2, x.dim())]
        mu = x.mean(dims, keepdim=True)
        d = x - mu
        var_b = (d * d).mean(dims, keepdim=True)  # biased: what training-mode BN normalises with
        n = torch.ones_like(x[:, :1]).sum()  # B·H·W, traced (dynamic batch)
        self.last = (mu.flatten(), (var_b * (n / (n - 1))).flatten())  # unbiased: what it stores
        y = d / torch.sqrt(var_b + self.eps)
        if self.weight is not None:
            shape = [1, -1] + [1] * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class _StatsGraph(nn.Module):
    def __init__(self, deploy: nn.Module, stat_bns: list[_StatBN]):
        super().__init__()
        self.deploy = deploy
        self.stat_bns = stat_bns  # plain list: already registered inside ``deploy``

    def forward(self, x: torch.Tensor):
        for s in self.stat_bns:
            s.last = None
        self.deploy(x)
        return tuple(t for s in self.stat_bns for t in s.last)


def bn_modules(seg: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in seg.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _swap_bns(seg: nn.Module) -> tuple[nn.Module, list[tuple[str, _StatBN]]]:
    model = copy.deepcopy(seg).eval()
    swapped = []
    for name, bn in bn_modules(model):
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        stat = _StatBN(bn)
        setattr(parent, name.rsplit(".", 1)[-1], stat)
        swapped.append((name, stat))
    return model, swapped


def _dummy(cfg, size, batch: int) -> torch.Tensor:
    if cfg.input_format == "uint8_nhwc":
        return torch.randint(0, 256, (batch, *size, 3), dtype=torch.uint8)
    return torch.randn(batch, 3, *size)


def export_stats_graph(seg, cfg, size: tuple[int, int]):
    """``(proto, names)``: the statistics graph and the BN layers it reports, in output order."""
    import onnx

    from pipa_edge.models.graph import DeployModel

    model, swapped = _swap_bns(seg)
    deploy = DeployModel(model, input_format=cfg.input_format, output="logits", output_resolution="model",
                         static_size=None).eval()
    x = _dummy(cfg, size, 2)
    with torch.no_grad():
        deploy(x)
    ran = [(n, s) for n, s in swapped if s.last is not None]  # a BN outside the deployed path is left out
    graph = _StatsGraph(deploy, [s for _, s in ran]).eval()
    outs = [f"{k}_{i}" for i in range(len(ran)) for k in ("mean", "var")]
    dyn = {0: "batch"} if not cfg.dynamic else ({0: "batch", 1: "height", 2: "width"}
                                                if cfg.input_format == "uint8_nhwc" else
                                                {0: "batch", 2: "height", 3: "width"})
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x,), buf, dynamo=False, opset_version=cfg.opset, input_names=["input"],
                          output_names=outs, do_constant_folding=True, dynamic_axes={"input": dyn})
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "pipa-edge"
    return proto, [n for n, _ in ran]


def _export_deployable(seg, cfg, size, where: str):
    """The deployable graph exactly as :func:`pipa_edge.export.exporter.export` makes it."""
    from pipa_edge.export.fold import fold_for_export
    from pipa_edge.export.onnx import export_onnx
    from pipa_edge.export.simplify import simplify

    xseg = fold_for_export(seg)[0] if cfg.fold else seg
    proto = export_onnx(xseg, where, size, dynamic=cfg.dynamic, batch=cfg.batch, opset=cfg.opset,
                        input_format=cfg.input_format, output=cfg.output, output_resolution=cfg.output_resolution)
    if cfg.simplify:
        shape = [cfg.batch, *size, 3] if cfg.input_format == "uint8_nhwc" else [cfg.batch, 3, *size]
        proto = simplify(proto, where=where, test_shape=shape if cfg.dynamic else None)
    return proto


def _layers(seg, names: list[str]) -> list[BNLayer]:
    mods = dict(seg.named_modules())
    out = []
    for n in names:
        bn = mods[n]
        c = bn.num_features
        g = bn.weight.detach().double().numpy() if bn.affine else np.ones(c)
        b = bn.bias.detach().double().numpy() if bn.affine else np.zeros(c)
        out.append(BNLayer(n, g, b, bn.running_mean.detach().double().numpy(),
                           bn.running_var.detach().double().numpy(), float(bn.eps)))
    return out


def perturbed(seg, layers: list[BNLayer], seed: int = 0):
    """A copy of ``seg`` whose BN statistics are shifted by distinct random amounts, and those stats."""
    rng = np.random.default_rng(seed)
    seg1 = copy.deepcopy(seg).eval()
    mods = dict(seg1.named_modules())
    stats1 = []
    for la in layers:
        m1 = la.mean + 0.2 * np.sqrt(la.var + la.eps) * rng.standard_normal(la.channels)
        v1 = la.var * np.exp(rng.uniform(-0.4, 0.4, la.channels))
        bn = mods[la.name]
        bn.running_mean.copy_(torch.from_numpy(m1))
        bn.running_var.copy_(torch.from_numpy(v1))
        # what the module holds (float32) is what the export folds
        stats1.append((bn.running_mean.double().numpy().copy(), bn.running_var.double().numpy().copy()))
    return seg1, stats1


def write_bn_companion(seg, cfg, onnx_path: str | Path, size: tuple[int, int], frames=None) -> Path | None:
    """Write ``<stem>.bnstats.onnx`` + ``<stem>.bnadapt.npz`` next to ``onnx_path`` (the saved deployable
    graph of ``seg`` under ``cfg``). Returns the companion path, or ``None`` (no BN / disabled /
    not explainable: a warning says why). ``frames``: the parity frames, for the re-folded gate."""
    import onnx

    if not getattr(cfg, "bn_adapt", True) or not bn_modules(seg):
        return None
    onnx_path = Path(onnx_path)
    companion_paths(onnx_path)[0].unlink(missing_ok=True)  # never leave one of an earlier export behind
    try:
        return _write(seg, cfg, onnx_path, size, frames)
    except Exception as e:  # noqa: BLE001 - optional data: the deployable export stands without it
        first = (str(e).strip().splitlines() or [""])[0][:160]
        log.warn(STAGE, f"no BN adaptation data for {onnx_path.name}: {type(e).__name__}: {first}")
        return None


def _write(seg, cfg, onnx_path: Path, size, frames) -> Path | None:
    import onnx

    comp, stats_path = companion_paths(onnx_path)
    proto_stats, names = export_stats_graph(seg, cfg, size)
    if not names:
        return None
    layers = _layers(seg, names)
    seg1, stats1 = perturbed(seg, layers)
    proto0 = onnx.load(str(onnx_path))
    proto1 = _export_deployable(seg1, cfg, size, str(onnx_path))
    problems = infer_targets(proto0, proto1, layers, stats1)
    if problems:
        log.warn(STAGE, f"no BN adaptation data for {onnx_path.name}: {problems[0]}"
                        f"{f' (+{len(problems) - 1} more)' if len(problems) > 1 else ''}")
        return None
    gate = _refold_parity(seg1, cfg, size, refold(proto0, layers, stats1), onnx_path, frames)
    if gate is not None and not gate.passed:
        log.warn(STAGE, f"no BN adaptation data for {onnx_path.name}: re-folded graph parity gate failed: "
                        f"{gate.line()}")
        return None
    onnx.save(proto_stats, str(stats_path))
    save_companion(comp, layers, onnx_path, stats_path, {"input_format": cfg.input_format,
                                                        "parity": gate.to_dict() if gate else None})
    n_t = sum(len(la.targets) for la in layers)
    log.ok(STAGE, f"BN adaptation data: {len(layers)} BN layer(s) → {n_t} folded tensor(s); statistics graph "
                  f"→ {stats_path.name}, {comp.name}" + (f"; re-folded parity {100 * gate.agreement:.3f}%"
                                                         if gate else " (parity disabled)"))
    return comp


def _refold_parity(seg1, cfg, size, proto, onnx_path: Path, frames):
    """The export's parity gate: the deployable graph re-folded with perturbed statistics vs the
    perturbed PyTorch model."""
    if frames is None:
        return None
    import onnx

    from pipa_edge.export.parity import compare
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.sidecar import read_sidecar
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    meta = read_sidecar(onnx_path)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "refolded.onnx"
        onnx.save(proto, str(p))
        test = OrtBackend(p, meta=meta)
        ref = TorchBackend(segmenter=seg1, input_size=size, output=cfg.output,
                           output_resolution=cfg.output_resolution)
        return compare(ref, test, frames.frames, f"{frames.source}, perturbed BN statistics",
                       min_agreement=cfg.parity.min_agreement)
