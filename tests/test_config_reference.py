"""docs/config.md lists every key of the recipe, export and collect configs and is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_config_reference_is_current_and_complete():
    from pipa_edge.train.config import TrainConfig

    mod = _script()
    text = mod.render()
    assert (REPO / "docs" / "config.md").read_text() == text, "run scripts/config_reference.py"
    keys = {r[0] for r in mod.rows(TrainConfig)}
    # nested sections are walked: a key of a sub-sub-section and the photometric options are listed
    assert {"adapt.teacher.alpha", "transform.gamma", "optim.max_iters", "precise_bn.num_images"} <= keys
    assert "| `adapt.teacher.alpha` | float | `0.999` | max EMA factor" in text
