"""Exact export-time rewrites (pipa_edge/export/fold.py): the folded SegFormer decoder equals the original."""

from __future__ import annotations

import pytest
import torch

from pipa_edge.data.classes import SYNTH11
from pipa_edge.export.fold import FoldedSegformerDecoder, fold_for_export
from pipa_edge.models import build_segmenter


def _segformer_with_bn_stats():
    torch.manual_seed(0)
    seg = build_segmenter("segformer-b0", SYNTH11).train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics, so the BN fold is exercised
        for _ in range(3):
            seg(torch.randn(2, 3, 64, 96) * 2 + 0.5)
    with torch.no_grad():
        bn = seg.decoder.fuse_stage[1]
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return seg.eval()


@pytest.mark.parametrize("hw", [(64, 128), (96, 160)])
def test_folded_decoder_matches_original(hw):
    seg = _segformer_with_bn_stats()
    folded, done = fold_for_export(seg)
    assert done == ["segformer_decoder_fold"] and isinstance(folded.decoder, FoldedSegformerDecoder)
    assert type(seg.decoder).__name__ == "SegformerDecoder"  # the reference is left untouched
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        a, b = seg.forward_features(x), folded.forward_features(x)
    assert a.features.shape == b.features.shape
    assert (a.features - b.features).abs().max() < 1e-4 * max(1.0, float(a.features.abs().max()))
    assert torch.equal(a.logits_low.argmax(1), b.logits_low.argmax(1))
    # the 4D -> D fuse conv at stride 4 is gone: fewer parameters, no 1024-channel input anywhere
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(folded) < n(seg)
    assert all(m.in_channels < 1024 for m in folded.decoder.modules() if isinstance(m, torch.nn.Conv2d))


def test_no_fold_for_other_architectures():
    seg = build_segmenter("lraspp-mbv3", SYNTH11).eval()
    out, done = fold_for_export(seg)
    assert out is seg and done == []
