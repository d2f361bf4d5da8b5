"""``pipa-edge collect stats|verify|prune DIR`` — inspect and maintain a pseudo-label collection.

Collections are written by ``pipa-edge run SOURCE --collect DIR``; see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json


def _size(text: str) -> int:
    from pipa_edge.runtime.collect.config import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub) -> None:
    p = sub.add_parser("collect", help="inspect/verify/prune an on-device pseudo-label collection",
                       description="Inspect, verify and prune a folder written by `pipa-edge run SOURCE --collect DIR`.")
    cs = p.add_subparsers(dest="collect_cmd", metavar="ACTION", required=True)
    s = cs.add_parser("stats", help="counts, class histogram, size")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true", help="print the statistics as JSON")
    v = cs.add_parser("verify", help="check every manifest entry's files (size, sha256, decodable); list orphans")
    v.add_argument("dir")
    v.add_argument("--fast", action="store_true", help="check sizes only (no sha256, no decoding)")
    v.add_argument("--json", action="store_true")
    r = cs.add_parser("prune", help="apply a new quota/threshold to an existing collection")
    r.add_argument("dir")
    r.add_argument("--max-bytes", type=_size, help="byte quota on sample files, e.g. 500M")
    r.add_argument("--max-samples", type=int)
    r.add_argument("--quota-per-class", type=int, help="samples per present class")
    r.add_argument("--min-confident-fraction", type=float)
    r.add_argument("--max-mean-entropy", type=float)
    r.add_argument("--policy", choices=("oldest", "redundant"), default="redundant",
                   help="which samples go first when over quota (default: redundant)")
    r.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.set_defaults(func=run)


def _stats(args) -> int:
    from pipa_edge.runtime.collect.ops import collection_stats

    st = collection_stats(args.dir)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{st['root']}: {st['samples']} samples, {st['bytes'] / 1e6:.2f} MB, classes {st['classes']}, "
                    f"{100 * st['ignored_fraction']:.1f}% ignore pixels")
    for col in ("class", "samples with it", "pixels", "pixel share"):
        t.add_column(col, justify="left" if col == "class" else "right")
    tot = max(1, sum(st["class_pixels"].values()))
    for name, n in st["class_pixels"].items():
        t.add_row(name, str(st["class_samples"][name]), str(n), f"{100 * n / tot:.1f}%")
    Console().print(t)
    print(f"removed so far: {st['removed']}; sources: {', '.join(st['sources']) or '-'}; "
          f"models: {', '.join(st['models']) or '-'}")
    for prob in st["manifest_problems"]:
        print(f"manifest: {prob}")
    return 0


def _verify(args) -> int:
    from pipa_edge.runtime.collect.ops import verify_collection

    rep = verify_collection(args.dir, check_hashes=not args.fast, decode=not args.fast)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        for prob in rep["problems"]:
            print(f"problem: {prob}")
        for o in rep["orphans"]:
            print(f"orphan: {o} (not in the manifest; removed at the next collection start)")
        if rep.get("torn_tail_bytes"):
            print(f"torn: the manifest's last line is cut short ({rep['torn_tail_bytes']} bytes without a newline: "
                  "a write was interrupted; the line is dropped at the next collection start)")
        state = "FAILED" if rep["problems"] else "ok"
        print(f"{args.dir}: {rep['entries']} entries, {len(rep['problems'])} problem(s), "
              f"{len(rep['orphans'])} orphan(s): {state}")
    return 1 if rep["problems"] else 0


def _prune(args) -> int:
    from pipa_edge.log import ok
    from pipa_edge.runtime.collect.ops import prune_collection

    rep = prune_collection(args.dir, max_bytes=args.max_bytes, max_samples=args.max_samples, policy=args.policy,
                           min_confident_fraction=args.min_confident_fraction,
                           max_mean_entropy=args.max_mean_entropy, quota_per_class=args.quota_per_class,
                           dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for name in rep["removed"]:
        print(f"{verb} {name}")
    ok("collect", f"{verb} {len(rep['removed'])} sample(s) ({rep['freed_bytes'] / 1e6:.2f} MB); "
       f"{rep['kept']} kept ({rep['bytes'] / 1e6:.2f} MB)")
    return 0


def run(args) -> int:
    from pathlib import Path

    from pipa_edge.errors import DataError

    if not Path(args.dir).is_dir():
        raise DataError(f"{args.dir}: collection folder not found")
    return {"stats": _stats, "verify": _verify, "prune": _prune}[args.collect_cmd](args)
