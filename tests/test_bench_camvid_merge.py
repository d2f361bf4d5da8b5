"""bench/camvid_adapt.py: a table built over several sessions keeps the earlier summary's runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CB = ["adapt.pseudo_label.quality_weight=false", "adapt.pseudo_label.class_quantile=0.5"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("camvid_adapt_bench", REPO / "bench" / "camvid_adapt.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(name, seed, dusk, day, method="pipa"):
    return {"name": name, "seed": seed, "method": method, "train_s": 10.0, "overrides": [],
            "scores": {"dusk": {"miou": dusk, "per_class_iou": {"road": dusk}, "confusion_matrix": [[1]]},
                       "day": {"miou": day}}}


def test_merge_keeps_missing_runs_and_prefers_new_ones(bench, tmp_path):
    # An earlier summary (older format: runs without day_miou/method) with pipa s0, s1 and source s0.
    prev = {"table": [{"row": "pipa", "method": "pipa", "day_mean": 56.0},
                      {"row": "source_only", "method": "source_only", "day_mean": 54.0}],
            "runs": [{"name": "pipa", "seed": 0, "train_s": 1.0, "overrides": [], "dusk_miou": 0.21,
                      "per_class_dusk": {}, "confusion_dusk": [[1]]},
                     {"name": "pipa", "seed": 1, "train_s": 1.0, "overrides": [], "dusk_miou": 0.23,
                      "per_class_dusk": {}, "confusion_dusk": [[1]]},
                     {"name": "source_only", "seed": 0, "train_s": 1.0, "overrides": [], "dusk_miou": 0.99,
                      "per_class_dusk": {}, "confusion_dusk": [[1]]}]}
    new = [_result("source_only", 0, 0.17, 0.54, "source_only"), _result("mean_teacher", 0, 0.22, 0.57, "mean_teacher")]
    merged = bench.merge_previous(new, prev, "old.json")
    keys = sorted((r["name"], r["seed"]) for r in merged)
    assert keys == [("mean_teacher", 0), ("pipa", 0), ("pipa", 1), ("source_only", 0)]
    src = [r for r in merged if r["name"] == "source_only"]
    assert src[0]["scores"]["dusk"]["miou"] == 0.17  # the new run wins over the old summary's
    pipa = [r for r in merged if r["name"] == "pipa"]
    assert all(r["merged_from"] == "old.json" and r["method"] == "pipa" for r in pipa)
    assert all(r["scores"]["day"]["miou"] == pytest.approx(0.56) for r in pipa)  # row mean as fallback
    table = {t["row"]: t for t in bench.summarize(merged)}
    assert table["pipa"]["dusk_mean"] == pytest.approx(22.0)
    assert table["pipa"]["dusk_std"] == pytest.approx(1.4142, abs=1e-3)
    assert table["mean_teacher"]["dusk_std"] is None
    assert [t["row"] for t in bench.summarize(merged)][:2] == ["source_only", "mean_teacher"]


def test_summarize_cli_merges_and_records_day_scores(bench, tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    (d / "result_mean_teacher_s0.json").write_text(json.dumps(_result("mean_teacher", 0, 0.22, 0.57, "mean_teacher")))
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({"table": [], "runs": [
        {"name": "pipa", "seed": 2, "method": "pipa", "train_s": 1.0, "overrides": [], "dusk_miou": 0.25,
         "day_miou": 0.55, "per_class_dusk": {}, "confusion_dusk": [[1]]}]}))
    out = tmp_path / "out.json"
    assert bench.main(["--summarize", str(d), "--merge", str(prev), "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    runs = {(r["name"], r["seed"]): r for r in info["runs"]}
    assert runs[("pipa", 2)]["day_miou"] == 0.55 and runs[("pipa", 2)]["merged_from"] == str(prev)
    assert runs[("mean_teacher", 0)]["day_miou"] == 0.57 and "merged_from" not in runs[("mean_teacher", 0)]
    # merging the output again is idempotent
    again = bench.merge_previous([], info, str(out))
    assert sorted((r["name"], r["seed"]) for r in again) == sorted(runs)
    assert all(r["merged_from"] == (str(prev) if r["name"] == "pipa" else str(out)) for r in again)


def test_summarize_select_keeps_only_the_named_rows(bench, tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    for name in ("mt_cbst", "mt_cbst_tbn", "pipa_b1"):
        (d / f"result_{name}_s0.json").write_text(json.dumps(_result(name, 0, 0.3, 0.55, "mean_teacher")))
    out = tmp_path / "out.json"
    assert bench.main(["--summarize", str(d), "--select", "mt_cbst", "mt_cbst_tbn", "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert sorted(r["name"] for r in info["runs"]) == ["mt_cbst", "mt_cbst_tbn"]
    assert sorted(t["row"] for t in info["table"]) == ["mt_cbst", "mt_cbst_tbn"]


def test_distill_jobs_share_the_pipa_overrides_and_chain_their_checkpoints(bench, tmp_path):
    import argparse

    ns = argparse.Namespace(data=str(tmp_path), device="cpu", workers=0, threads=2, out=str(tmp_path / "o"),
                            seeds=[0], rows=[], multi_seed=["pipa"], variant=[], set=[], oracle=False,
                            distill="segformer-b1", distill_set=["adapt.aux_bn_update=false"],
                            src_iters=5, adapt_iters=5)
    jobs = {j["name"]: j for j in bench.build_jobs(ns)}
    assert set(jobs) == {"source_only", "source_only_b1", "pipa_b1", "pipa_distill_b1"}
    teacher, student = jobs["pipa_b1"], jobs["pipa_distill_b1"]
    assert teacher["overrides"][:1] == student["overrides"][:1] == ["adapt.aux_bn_update=false"]  # the recipe + --distill-set
    assert "model.arch=segformer-b1" in teacher["overrides"] and not any("arch" in o for o in student["overrides"])
    assert teacher["init_from"].endswith("source_only_b1_s0/final.pt")
    assert student["init_from"].endswith("source_only_s0/final.pt")  # the B0 source model, not the B1 one
    assert f"adapt.distill.teacher_checkpoint={Path(teacher['out']) / 'final.pt'}" in student["overrides"]
    assert bench._deps(student) == ["source_only_s0", "pipa_b1_s0"]


def test_row_names_keep_their_first_settings_while_the_recipes_move_on(bench):
    from pipa_edge.train.config import load_train_config

    recipe = load_train_config(REPO / bench.PIPA).adapt
    assert (recipe.pseudo_label.class_quantile, recipe.pseudo_label.quality_weight, recipe.aux_bn_update) == (0.5, False, False)
    _, path, ov = bench.ROWS["pipa"]
    v1 = load_train_config(REPO / path, ov).adapt  # the row measured first: global threshold + quality weight
    assert (v1.pseudo_label.class_quantile, v1.pseudo_label.quality_weight, v1.aux_bn_update) == (None, True, True)
    bnfix = load_train_config(REPO / path, ov + CB + ["adapt.aux_bn_update=false"]).adapt  # the variant = the recipe
    assert bnfix.model_dump() == recipe.model_dump()
    _, mt_path, mt_ov = bench.ROWS["mean_teacher"]
    mt = load_train_config(REPO / mt_path, mt_ov + CB).adapt
    assert mt.model_dump() == load_train_config(REPO / mt_path).adapt.model_dump()


def test_rows_pin_precise_bn_off_and_a_variant_can_set_it(bench, tmp_path):
    # The recipes end with precise_bn enabled; the bench's rows keep the setting they were measured with.
    from argparse import Namespace

    from pipa_edge.train.config import load_train_config

    a = Namespace(data=str(tmp_path), device="cpu", workers=0, threads=1, out=str(tmp_path / "out"), set=[],
                  seeds=[0], rows=["mean_teacher", "pipa"], multi_seed=[], adapt_iters=5, src_iters=5, oracle=False,
                  variant=["mt_pbn:mean_teacher:precise_bn.enabled=true"], distill=None, distill_set=[], set_oracle=[])
    jobs = {j["name"]: j for j in bench.build_jobs(a)}
    assert set(jobs) == {"source_only", "mean_teacher", "pipa", "mt_pbn"}
    for name in ("mean_teacher", "pipa"):
        assert load_train_config(bench.REPO / jobs[name]["recipe"]).precise_bn.enabled  # the recipe: on
    enabled = {n: load_train_config(bench.REPO / j["recipe"], bench.job_overrides(j)).precise_bn.enabled
               for n, j in jobs.items()}
    assert enabled == {"source_only": False, "mean_teacher": False, "pipa": False, "mt_pbn": True}


def test_source_models_are_those_of_the_seeds_asked_for_and_of_the_rows(bench, tmp_path):
    # A seed-2-only session trains source_only_s2, not also source_only_s0 (no row of it runs seed 0).
    from argparse import Namespace

    def srcs(**kw):
        a = Namespace(data=str(tmp_path), device="cpu", workers=0, threads=1, out=str(tmp_path / "o"), set=[],
                      adapt_iters=5, src_iters=5, oracle=False, distill_set=[], set_oracle=[],
                      **{"seeds": [0], "rows": [], "multi_seed": [], "variant": [], "distill": None, **kw})
        jobs = bench.build_jobs(a)
        names = [f"{j['name']}_s{j['seed']}" for j in jobs]
        assert all(d in names for j in jobs for d in bench._deps(j))  # every dependency is built
        return [n for n in names if n.startswith("source_only_s")], names

    assert srcs(seeds=[2], variant=["mt_cbst*:mean_teacher:"])[0] == ["source_only_s2"]
    assert srcs(seeds=[2], multi_seed=["pipa"], distill="segformer-b1")[0] == ["source_only_s2"]
    # a row outside --multi-seed runs seed 0 only, so seed 0's source model comes too, and first
    got, names = srcs(seeds=[1, 2], rows=["mean_teacher"])
    assert got == ["source_only_s0", "source_only_s1", "source_only_s2"] and names[:3] == got
