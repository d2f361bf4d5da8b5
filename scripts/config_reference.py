#!/usr/bin/env python3
"""Write docs/config.md: every key of the recipe (train), export-profile and collect configs with
its type, default and the note beside it in the source (the reference users set keys from).

    .venv/bin/python scripts/config_reference.py            # rewrite docs/config.md
    .venv/bin/python scripts/config_reference.py --check    # exit 1 if docs/config.md is stale
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "config.md"
HEADER = """# Config reference

Every key of the three YAML configs, generated from the typed models by
`scripts/config_reference.py` (a test fails when this page is stale). Dotted keys are what
`--set key=value` takes. Unknown keys and bad values are refused at load, all problems on one line.

- **Recipe** (`pipa-edge train RECIPE.yaml`, `train/*.yaml`): the model, datasets, transform,
  adaptation method, optimiser, evaluation.
- **Export profile** (`pipa-edge export … --profile export/NAME.yaml`, `export/*.yaml`).
- **Collection** (`pipa-edge run … --collect DIR --collect-config FILE|--collect-set key=value`).
"""


def _notes(cls) -> dict[str, str]:
    """``field -> trailing # comment`` of the class body (the note written beside each key)."""
    out = {}
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return out
    for line in src.splitlines():
        m = re.match(r"\s{4}(\w+)\s*:[^#]*?(?:#\s*(.*))?$", line)
        if m and m.group(2):
            out[m.group(1)] = m.group(2).strip()
    return out


def _model_of(ann):
    """The StrictModel class inside an annotation (Optional[X], list[X], Union[X, …]), else None."""
    from pipa_edge.config import StrictModel

    if isinstance(ann, type) and issubclass(ann, StrictModel):
        return ann
    for a in typing.get_args(ann):
        m = _model_of(a)
        if m is not None:
            return m
    return None


def _type(ann) -> str:
    s = str(ann).replace("typing.", "").replace("NoneType", "None")
    s = re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], s)
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Z]\w*)", r"\1", s)


def _default(field) -> str:
    if field.is_required():
        return "required"
    d = field.get_default(call_default_factory=True)
    from pipa_edge.config import StrictModel

    if isinstance(d, StrictModel):
        return "(section)"
    return f"`{d!r}`" if d is not None else "`None`"


def rows(cls, prefix: str = "") -> list[tuple[str, str, str, str]]:
    out, notes = [], _notes(cls)
    for name, field in cls.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        out.append((key, _type(field.annotation), _default(field), notes.get(name, "")))
        if sub is not None and sub is not cls:
            out += rows(sub, key + ".")
    return out


def render() -> str:
    from pipa_edge.export.config import ExportConfig
    from pipa_edge.runtime.collect.config import CollectConfig
    from pipa_edge.train.config import TrainConfig

    parts = [HEADER]
    for title, cls in (("Recipe (`TrainConfig`)", TrainConfig), ("Export profile (`ExportConfig`)", ExportConfig),
                       ("Collection (`CollectConfig`)", CollectConfig)):
        rs = rows(cls)
        parts.append(f"\n## {title}\n\n{len(rs)} keys.\n\n| key | type | default | note |\n|---|---|---|---|")
        for key, typ, default, note in rs:
            typ, default, note = (c.replace("|", "\\|") for c in (typ, default, note))
            parts.append(f"| `{key}` | {typ} | {default} | {note} |")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/config.md differs from the models")
    a = ap.parse_args(argv)
    text = render()
    if a.check:
        ok = OUT.is_file() and OUT.read_text() == text
        print("docs/config.md is current" if ok else "docs/config.md is stale: run scripts/config_reference.py")
        return 0 if ok else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
