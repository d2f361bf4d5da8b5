"""Exact inference-time graph rewrites applied to the plain segmenter before export.

**SegFormer decoder fold.** The all-MLP decoder computes, for encoder stages ``x_i (C_i, h_i, w_i)``::

    m_i = L_i x_i + b_i                      per-pixel Linear C_i → D   (D = 256)
    u_i = up(m_i)                            bilinear to stride 4 (align_corners=False)
    y   = ReLU(BN(F [u_1; ...; u_4]))        1×1 conv 4D → D at stride 4, then BN, ReLU

Bilinear resampling is a per-channel linear map whose weights sum to 1, so it commutes with any
per-pixel affine map: ``F_i up(m_i) = up(F_i m_i)`` and ``up(W x + b) = W up(x) + b``. With ``F``
split into its four ``D × D`` blocks ``F_i`` and BN folded (eval statistics, ``s = γ/√(σ²+ε)``,
``t = β − μ s``)::

    y = ReLU( Σ_i up(W_i x_i) + c ),   W_i = diag(s) F_i L_i   (D × C_i),   c = s ⊙ Σ_i F_i b_i + t

i.e. one 1×1 conv per stage *at that stage's resolution*, then resample and add. The 4D → D conv at
stride 4 (the largest single cost of SegFormer-B0 at 512×1024: ~8.6 GMAC of ~17) disappears. The
result equals the original up to float re-association; the export's parity gate compares the
exported graph with the *unmodified* PyTorch model. Training never sees the folded module.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class FoldedSegformerDecoder(nn.Module):
    """Drop-in for ``segmentation_models_pytorch``'s ``SegformerDecoder`` (eval only)."""

    def __init__(self, dec: nn.Module):
        super().__init__()
        conv, bn = dec.fuse_stage[0], dec.fuse_stage[1]
        d = conv.out_channels
        f = conv.weight.detach().double().reshape(d, -1)  # (D, n·D)
        if isinstance(bn, nn.BatchNorm2d):
            s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            t = bn.bias.detach().double() - bn.running_mean.double() * s
        else:  # no norm: the conv has its own bias
            s = torch.ones(d, dtype=torch.float64)
            t = conv.bias.detach().double() if conv.bias is not None else torch.zeros(d, dtype=torch.float64)
        self.proj = nn.ModuleList()
        c = t.clone()
        for i, mlp in enumerate(dec.mlp_stage):
            lw, lb = mlp.linear.weight.detach().double(), mlp.linear.bias.detach().double()
            fi = f[:, i * d:(i + 1) * d]
            w = s[:, None] * (fi @ lw)
            c = c + s * (fi @ lb)
            p = nn.Conv2d(lw.shape[1], d, 1, bias=False)
            p.weight.data.copy_(w.view(d, -1, 1, 1).float())
            self.proj.append(p)
        self.register_buffer("bias", c.float().view(1, d, 1, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        target_size = [dim // 4 for dim in features[0].shape[2:]]
        features = features[2:] if features[1].size(1) == 0 else features[1:]
        features = features[::-1]  # deepest stage first, as the original
        out = self.bias
        for conv, x in zip(self.proj, features):
            y = conv(x)
            if list(y.shape[-2:]) != target_size:
                y = F.interpolate(y, size=target_size, mode="bilinear", align_corners=False)
            out = out + y
        return F.relu(out)


def _is_segformer_decoder(m: nn.Module) -> bool:
    return type(m).__name__ == "SegformerDecoder" and hasattr(m, "mlp_stage") and hasattr(m, "fuse_stage")


def fold_for_export(segmenter: nn.Module) -> tuple[nn.Module, list[str]]:
    """An eval-mode copy of ``segmenter`` with the exact rewrites applied, and their names.
    The input is left untouched (it stays the parity reference)."""
    done: list[str] = []
    if not _is_segformer_decoder(getattr(segmenter, "decoder", None) or nn.Module()):
        return segmenter, done
    seg = copy.deepcopy(segmenter).eval()
    seg.decoder = FoldedSegformerDecoder(seg.decoder).eval()
    done.append("segformer_decoder_fold")
    return seg, done
