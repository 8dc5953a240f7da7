"""Two versions of the code, side by side: old and new runs of the benchmark suite.

Usage::

    # in two environments (two checkouts, each installed in its own venv), alternating:
    old/.venv/bin/python -m pytest benchmarks --benchmark-only --benchmark-json=old1.json
    new/.venv/bin/python -m pytest benchmarks --benchmark-only --benchmark-json=new1.json
    ... (old2, new2: alternating runs share the machine's noise fairly)
    .venv/bin/python benchmarks/compare.py --old old1.json old2.json --new new1.json new2.json

Each side keeps its best median per case (``report.merge_runs``). For our own rows it
prints the overhead over the group's bare call, old and new, and new / old: the change
in what the library costs per call. Peers' rows are left out (they did not change).
``--limit 1.05`` exits 1 when a row's ratio is above it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import load_rows, merge_runs


def overheads(paths: list[str]) -> dict[tuple[str, str], tuple[str, float]]:
    data = merge_runs([json.loads(Path(p).read_text()) for p in paths])
    found = {}
    for group, rows in load_rows(data).items():
        for row in rows:
            if row.role == "ours" and row.overhead is not None:
                found[group, row.id] = (row.label, row.overhead)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", nargs="+", required=True)
    parser.add_argument("--new", nargs="+", required=True)
    parser.add_argument("--limit", type=float, default=None)
    args = parser.parse_args()
    old, new = overheads(args.old), overheads(args.new)
    print("| group | case | old overhead (ns) | new overhead (ns) | new / old |")
    print("|---|---|---:|---:|---:|")
    worst = 0.0
    for key in sorted(old.keys() & new.keys()):
        label, before = old[key]
        after = new[key][1]
        # below ~20 ns the bare call's noise dominates: compare differences, not ratios
        ratio = after / before if before > 20 else 1.0 + (after - before) / 20
        worst = max(worst, ratio)
        print(f"| {key[0]} | {label} | {before:.0f} | {after:.0f} | {ratio:.2f} |")
    missing = sorted(old.keys() ^ new.keys())
    if missing:
        print(f"\nin one run only: {missing}")
    return 1 if args.limit is not None and worst > args.limit else 0


if __name__ == "__main__":
    raise SystemExit(main())
