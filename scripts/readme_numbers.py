#!/usr/bin/env python3
"""Regenerate the README's measured numbers instead of typing them.

Numbers and where they come from:

* test count — ``pytest --collect-only -q tests`` (cheap);
* test time — ``--time-tests``: runs ``python -m pytest -q tests`` once and times it;
* demo time and mIoUs — ``runs/demo/demo_summary.json`` (written by ``make demo``: ``total_s`` and
  the real-style mIoU of each model), or ``--time-demo`` runs ``make demo`` first.

Prints the numbers and the README sentences they go into; ``--write`` patches README.md in place
(only the sentences below, matched by pattern), ``--check`` exits 1 when README differs.

    .venv/bin/python scripts/readme_numbers.py                        # print
    .venv/bin/python scripts/readme_numbers.py --time-tests --write   # after `make demo`, on a quiet machine
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS_RE = re.compile(r"`make test` runs ~?\d+ tests in about [\d.]+ min")
DEMO_TIME_RE = re.compile(r"the demo itself then took \*\*[^*]+\*\*")
DEMO_MIOU_RE = re.compile(r"source-only \*\*[\d.]+\*\* → PiPa\+\+ \*\*[\d.]+\*\*")


def count_tests(py: str) -> int:
    out = subprocess.run([py, "-m", "pytest", "--collect-only", "-q", "tests"], cwd=REPO, capture_output=True,
                         text=True).stdout
    m = re.search(r"(\d+) tests? collected", out) or re.search(r"^(\d+) tests?", out, re.M)
    if not m:
        raise SystemExit(f"cannot read the test count from pytest --collect-only:\n{out[-500:]}")
    return int(m.group(1))


def time_tests(py: str) -> float:
    t = time.perf_counter()
    subprocess.run([py, "-m", "pytest", "-q", "tests"], cwd=REPO, check=False)
    return time.perf_counter() - t


def fmt_duration(s: float) -> str:
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec} s" if m else f"{sec} s"


def sentences(n_tests: int, test_s: float | None, demo: dict | None) -> dict[re.Pattern, str]:
    out: dict[re.Pattern, str] = {}
    if test_s is not None:
        out[TESTS_RE] = f"`make test` runs {n_tests} tests in about {test_s / 60:.1f} min"
    if demo:
        if demo.get("total_s") is not None:
            out[DEMO_TIME_RE] = f"the demo itself then took **{fmt_duration(float(demo['total_s']))}**"
        miou = demo.get("miou") or {}
        if miou.get("source-only") is not None and miou.get("PiPa++") is not None:
            out[DEMO_MIOU_RE] = (f"source-only **{100 * miou['source-only']:.1f}** → PiPa++ "
                                 f"**{100 * miou['PiPa++']:.1f}**")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--time-tests", action="store_true", help="run the whole suite once and time it")
    ap.add_argument("--time-demo", action="store_true", help="run `make demo` first (writes demo_summary.json)")
    ap.add_argument("--demo-summary", default=str(REPO / "runs" / "demo" / "demo_summary.json"))
    ap.add_argument("--readme", default=str(REPO / "README.md"))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="patch the README sentences in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when the README differs")
    a = ap.parse_args()
    if a.time_demo:
        subprocess.run(["make", "demo"], cwd=REPO, check=True)
    n = count_tests(a.python)
    test_s = time_tests(a.python) if a.time_tests else None
    summary = Path(a.demo_summary)
    demo = json.loads(summary.read_text()) if summary.is_file() else None
    print(f"tests: {n}" + (f", whole suite {test_s:.0f} s" if test_s is not None else " (time: --time-tests)"))
    print(f"demo: {summary} " + (f"total {demo.get('total_s')} s, mIoU {demo.get('miou')}" if demo else "missing"))
    readme = Path(a.readme)
    text = new = readme.read_text()
    for pattern, sentence in sentences(n, test_s, demo).items():
        if not pattern.search(new):
            print(f"README: no sentence matches {pattern.pattern!r}; left alone", file=sys.stderr)
            continue
        new = pattern.sub(sentence, new, count=1)
        print(f"README: {sentence}")
    if a.check:
        return int(new != text)
    if a.write and new != text:
        readme.write_text(new)
        print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
