"""Typed configs: pydantic models loaded from YAML with ``--set key.sub=value`` overrides.

Every config model derives from :class:`StrictModel` (unknown keys are errors). Loading errors
become :class:`~pipa_edge.errors.ConfigError` with one line naming the file and the dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipa_edge.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _parse_scalar(text: str) -> Any:
    """``--set`` values are YAML scalars/flow collections: ``1e-4``, ``true``, ``[1, 2]``, ``null``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: Sequence[str], source: str = "--set") -> dict:
    """Apply ``a.b.c=value`` strings to a nested dict (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: '{item}' is not key=value")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"{source}: empty key in '{item}'")
        node = data
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source}: key '{key}': '{p}' is not a section")
            node = nxt
        node[parts[-1]] = _parse_scalar(raw)
    return data


MAX_ERRORS_SHOWN = 8


def _one_error(e: dict) -> str:
    loc = ".".join(str(x) for x in e.get("loc", ())) or "<root>"
    msg = "unknown key" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid value")
    return f"key '{loc}': {msg}"


def format_validation_error(err: ValidationError, where: str) -> str:
    """Every error of a pydantic ValidationError on one line: ``FILE: key 'a.b': message; key 'c': unknown key``
    (unknown keys first: a misspelled key is often the cause of the other errors; at most 8, then ``+N more``)."""
    errs = sorted(err.errors(), key=lambda e: e.get("type") != "extra_forbidden")  # stable: order kept otherwise
    shown = [_one_error(e) for e in errs[:MAX_ERRORS_SHOWN]]
    more = len(errs) - len(shown)
    tail = f" (+{more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(shown) + tail


def validate(model: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(model: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load YAML (optional), apply overrides, validate into ``model``."""
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return validate(model, data, where=str(path) if path is not None else "config")


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
