"""bench/pl_coverage.py: covered / uncovered errors of a model's own pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipa_edge.adapt.pseudo import make_pseudo_labels
from pipa_edge.bench.latency import build_arch

from _bench_util import load_bench


def test_summarize_by_hand():
    mod = load_bench("pl_coverage")
    # 2 classes; covered: 6 right (class 0), 2 wrong (1 -> 0); uncovered: 3 right (class 1), 1 wrong (0 -> 1)
    cms = {"covered": np.array([[6, 0], [2, 0]]), "uncovered": np.array([[0, 1], [0, 3]])}
    s = mod.summarize(cms, ("a", "b"))
    assert s["pixel_acc"] == pytest.approx(9 / 12) and s["covered"] == pytest.approx(8 / 12)
    assert s["acc_covered"] == pytest.approx(6 / 8) and s["acc_uncovered"] == pytest.approx(3 / 4)
    assert s["err_covered"] == pytest.approx(2 / 3)
    assert s["per_class"]["b"] == pytest.approx({"pixels": 5 / 12, "covered": 2 / 5, "recall_covered": 0.0,
                                                 "recall_uncovered": 1.0, "recall": 3 / 5, "top_wrong": "a"})
    assert [(c["gt"], c["pred"]) for c in s["confusions_covered"]] == [("b", "a")]
    assert s["confusions_uncovered"][0]["share_of_errors"] == pytest.approx(1 / 3)


class _Frames:
    """Three random frames with labels (one ignore band): stands in for dusk_train."""

    def __init__(self, k: int):
        g = torch.Generator().manual_seed(0)
        self.items = [{"image": torch.randint(0, 255, (3, 32, 48), generator=g, dtype=torch.uint8).numpy(),
                       "label": torch.randint(0, k, (32, 48), generator=g).numpy()} for _ in range(3)]
        for s in self.items:
            s["label"][:4] = 255

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_coverage_counts_every_labelled_pixel_once_with_the_training_rule():
    mod = load_bench("pl_coverage")
    torch.manual_seed(0)
    model = build_arch("segformer-b0", 0).eval()
    k = model.classes.num_classes
    ds = _Frames(k)
    cms = mod.coverage(model, ds, 0.968, 0.5, batch=2)
    assert cms["covered"].sum() + cms["uncovered"].sum() == 3 * 28 * 48
    # the same rule by hand, batch by batch (the per-class median is taken per batch)
    covered = 0
    for idx in ([0, 1], [2]):
        img = torch.stack([torch.as_tensor(ds[i]["image"]) for i in idx])
        with torch.no_grad():
            pl = make_pseudo_labels(model(model.normalize(img)).float(), 0.968, False, class_quantile=0.5)
        covered += int((pl.weight[:, 4:] > 0).sum())
    assert cms["covered"].sum() == covered and 0 < covered < 3 * 28 * 48


def test_bench_argument_types_name_the_bad_value(tmp_path):
    import argparse

    args = load_bench("lib_cli_args")
    existing_dir, named_checkpoint = args.existing_dir, args.named_checkpoint

    ck = tmp_path / "a.pt"
    ck.write_bytes(b"")
    assert named_checkpoint(f"src={ck}") == ("src", ck)
    for bad in ("src", f"={ck}", f"src={tmp_path / 'missing.pt'}"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=PATH"):
            named_checkpoint(bad)
    assert existing_dir(str(tmp_path)) == tmp_path
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        existing_dir(str(ck))
