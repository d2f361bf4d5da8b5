"""bench/camvid_adapt.py --protocol heldout and bench/camvid_source_only.py --day-folds: jobs, pooling, decision."""

from __future__ import annotations

import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def P():
    return _load("camvid_protocol")


def _cm(correct, wrong):
    """2-class confusion matrix: class 0 right ``correct`` times, ``wrong`` pixels of class 1 called 0."""
    return [[correct, 0], [wrong, 10]]


def _res(name, seed, fold, **scores):
    return {"protocol": "heldout", "name": name, "seed": seed, "fold": fold,
            "scores": {"180x240": {k: {"miou": 0.0, "confusion_matrix": v} for k, v in scores.items()}}}


def _args(tmp_path, **kw):
    d = dict(data=str(tmp_path / "camvid"), out=str(tmp_path / "o"), device="cpu", threads=1, workers=0, eval_size=None,
             set=[], smoke=False, seeds=[0, 1], rows=["adabn", "mean_teacher", "pipa"], variant=[], distill=None,
             distill_set=[], oracle=True, oracle_seeds=[0], src_iters=600, adapt_iters=600, plan=False)
    d.update(kw)
    return Namespace(**d)


def _fake_camvid(root):
    for split, names in (("day_train", ["0006R0_f01", "0006R0_f02", "0016E5_01", "0016E5_02"]),
                         ("dusk_train", [f"0001TP_{i:04d}" for i in range(5)])):
        for sub in ("images", "labels"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
            for n in names:
                (root / split / sub / f"{n}.png").write_bytes(b"")


def test_heldout_jobs_adapt_on_one_half_and_score_the_other(P, tmp_path):
    from pipa_edge.train.config import load_train_config

    _fake_camvid(tmp_path / "camvid")
    jobs = {Path(j["out"]).name: j for j in P.heldout_jobs(_args(tmp_path))}
    assert {"source_s0", "source_s1", "adabn_f1_s1", "mean_teacher_f0_s0", "pipa_f1_s1", "oracle_f0_s0"} <= set(jobs)
    mt = jobs["mean_teacher_f1_s0"]
    cfg = load_train_config(REPO / mt["recipe"], mt["overrides"])
    assert cfg.target.fold.model_dump() == {"k": 2, "index": 1, "part": "train"} and not cfg.precise_bn.enabled
    assert mt["scores"]["heldout"]["fold"] == {"k": 2, "index": 1, "part": "heldout"}
    assert mt["scores"]["transductive"]["fold"]["part"] == "train"
    assert mt["bn_images"]["fold"]["part"] == "train"  # the recipe's precise BN: the fold's target images only
    assert mt["init_from"].endswith("source_s0/final.pt") and mt["dep"] == "source_s0"
    ada = jobs["adabn_f0_s1"]
    assert ada["train"] is False and ada["init_from"].endswith("source_s1/final.pt")
    # the oracle trains on day + the adaptation half of the same fold, scored on that fold's held-out half
    names = sorted(p.stem for p in (tmp_path / "o" / "oracle_data" / "fold0_train" / "images").iterdir())
    assert names == ["0001TP_0003", "0001TP_0004", "0006R0_f01", "0006R0_f02", "0016E5_01", "0016E5_02"]
    assert jobs["oracle_f0_s0"]["scores"]["heldout"]["fold"]["index"] == 0
    cpu = P.cpu_minutes(list(jobs.values()), 600, 600)
    assert cpu == pytest.approx(2 * 13 + 4 * 1 + 4 * 30 + 4 * 40 + 2 * 13)


def test_heldout_table_pools_folds_and_compares_with_the_source_of_the_same_seed(P):
    res = [_res("source", 0, None, all=_cm(50, 50)), _res("source", 1, None, all=_cm(60, 40)),
           _res("pipa", 0, 0, heldout=_cm(30, 10), transductive=_cm(40, 0)),
           _res("pipa", 0, 1, heldout=_cm(40, 20), transductive=_cm(40, 0)),
           _res("pipa", 1, 0, heldout=_cm(30, 5), transductive=_cm(40, 0)),
           _res("pipa", 1, 1, heldout=_cm(40, 5), transductive=_cm(40, 0)),
           _res("mean_teacher", 1, 0, heldout=_cm(1, 1), transductive=_cm(1, 1)),  # fold 1 missing: left out
           _res("oracle", 0, 0, heldout=_cm(50, 0)), _res("oracle", 0, 1, heldout=_cm(50, 0))]
    table = {t["row"]: t for t in P.heldout_table(res, "180x240")}
    assert "mean_teacher" not in table
    pooled0 = P.pooled_miou([[[70, 0], [30, 20]]])  # both folds' held-out matrices summed
    src0 = P.pooled_miou([_cm(50, 50)])
    p0 = table["pipa"]["per_seed"][0]
    assert p0["heldout"] == pytest.approx(pooled0) and p0["diff"] == pytest.approx(pooled0 - src0)
    assert p0["transductive"] == pytest.approx(100.0)
    assert table["source"]["diff_mean"] == 0 and table["oracle"]["heldout_mean"] == pytest.approx(100.0)
    d = P.decide(list(table.values()), target_gain=3.0, min_seeds=2)
    assert d["recommended"] == "pipa" and len(d["diff_per_seed"]) == 2 and not d["provisional"]
    assert d["target_met"] == (min(d["diff_per_seed"]) > 0 and np.mean(d["diff_per_seed"]) >= 3)
    assert 0 < d["gap_closed_pct"] < 100
    # with fewer seeds than the protocol's 3 the decision is provisional and the target not judged
    d3 = P.decide(list(table.values()), target_gain=3.0)
    assert d3["provisional"] and d3["rows_short_of_seeds"] == ["pipa", "source"] and d3["target_met"] is False


def test_decision_keeps_the_source_when_nothing_beats_it(P):
    res = [_res("source", 0, None, all=_cm(50, 10)),
           _res("pipa", 0, 0, heldout=_cm(20, 10), transductive=_cm(40, 0)),
           _res("pipa", 0, 1, heldout=_cm(20, 10), transductive=_cm(40, 0))]
    d = P.decide(P.heldout_table(res, "180x240"))
    assert d["recommended"] == "source" and d["target_met"] is False


def test_day_fold_jobs_train_on_one_day_half_and_score_the_other(P, tmp_path):
    from pipa_edge.train.config import load_train_config

    S = _load("camvid_source_only")
    args = Namespace(
        data=str(tmp_path / "camvid"), out=str(tmp_path / "o"), variant=["none", "jitter_cw_s15"], seed=[0],
        smoke=False, iters=None, overrides=[], threads=1, eval_size=[[180, 240], [192, 256]],
        config=str(REPO / "train" / "camvid_source_only.yaml"))
    jobs = S.day_fold_jobs(args)
    assert len(jobs) == 4
    j = next(j for j in jobs if j["name"] == "none" and j["fold"] == 1)
    cfg = load_train_config(j["recipe"], j["overrides"])
    assert cfg.source.split == "day_train" and cfg.source.fold.model_dump() == {"k": 2, "index": 1, "part": "train"}
    assert cfg.transform.brightness == 0 and cfg.loss.class_weights == "none"
    assert j["scores"]["dayval"]["fold"] == {"k": 2, "index": 1, "part": "heldout"}
    ref = load_train_config(next(j for j in jobs if j["name"] == "jitter_cw_s15")["recipe"],
                            next(j for j in jobs if j["name"] == "jitter_cw_s15")["overrides"])
    shipped = load_train_config(REPO / "train" / "camvid_source_only.yaml")
    assert ref.transform == shipped.transform and ref.loss == shipped.loss  # the reference variant = the recipe
    res = [{"name": "none", "seed": 0, "fold": k, "scores": {"180x240": {"dayval": {"confusion_matrix": _cm(10, 5)}}}}
           for k in (0, 1)]
    t = S.day_fold_table(res)
    assert t[0]["mean"] == pytest.approx(P.pooled_miou([[[20, 0], [10, 20]]]))



def test_merge_heldout_adds_missing_runs_and_keeps_the_new_ones(P):
    new = [_res("source", 1, None, all=_cm(60, 40)), _res("pipa", 1, 0, heldout=_cm(30, 5)),
           _res("pipa", 1, 1, heldout=_cm(40, 5))]
    prev = {"runs": [{k: v for k, v in r.items() if k != "protocol"} for r in (
        _res("source", 1, None, all=_cm(1, 99)),  # superseded by the new run of the same seed
        _res("source", 0, None, all=_cm(50, 50)), _res("pipa", 1, 0, heldout=_cm(1, 99)),
        _res("mean_teacher", 0, 0, heldout=_cm(30, 10)), _res("mean_teacher", 0, 1, heldout=_cm(40, 20)))]}
    merged = P.merge_heldout(new, prev, "old.json")
    keys = sorted((r["name"], r["seed"], r["fold"] if r["fold"] is not None else -1) for r in merged)
    assert keys == [("mean_teacher", 0, 0), ("mean_teacher", 0, 1), ("pipa", 1, 0), ("pipa", 1, 1),
                    ("source", 0, -1), ("source", 1, -1)]
    assert [r.get("merged_from") for r in merged if r["name"] == "source" and r["seed"] == 1] == [None]
    assert all(r["merged_from"] == "old.json" for r in merged if r["name"] == "mean_teacher")
    table = {t["row"]: t for t in P.heldout_table(merged, "180x240")}
    assert table["source"]["seeds"] == [0, 1] and table["mean_teacher"]["seeds"] == [0]
    assert table["source"]["per_seed"][1]["heldout"] == pytest.approx(P.pooled_miou([_cm(60, 40)]))
