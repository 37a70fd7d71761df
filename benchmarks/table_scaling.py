"""Benchmark: how a run's time grows with the number of tables a client onboards.

    uv run python benchmarks/table_scaling.py --rows 2000 --changes 1000 --repeat 3

For each table count (default 1, 5, 15 and every CDM table), a client with that many
OMOP CDM tables (in dependency order: location, care_site, provider, person, ...),
`--rows` persons (other tables scaled from it, as `devstack seed` does): its first
run (the snapshot), then `--repeat` incremental runs of `--changes` inserts, updates
and deletes spread over its tables, each timed from process start to published.
The runs are the production selection: every model and test a scheduled run
executes for those tables. Prints a table (median and per table) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

# The same timed runner call as the incremental benchmark (python puts this script's
# folder on sys.path).
from runner_incremental import run_runner

from clientpipelines import omop
from devstack.sampledata import SampleData
from devstack.stack import Stack
from devstack.wiring import unwire_client, wait_for_cdc, wire_client


def every_table() -> list[str]:
    return omop.in_dependency_order(list(omop.load()))


def measure(
    stack: Stack, tables: list[str], args: argparse.Namespace, say: Callable[[str], None]
) -> dict[str, Any]:
    client = f"scale{len(tables)}x{uuid.uuid4().hex[:5]}"
    wire_client(stack, client, rows=args.rows, tables=tables)
    try:
        wait_for_cdc(stack, client, timeout=3600, quiet_for=5)
        first = run_runner(stack, client)
        runs = []
        for i in range(args.repeat):
            SampleData(stack).apply_changes(client, count=args.changes, seed=300 + i, batch=500)
            wait_for_cdc(stack, client, timeout=600, quiet_for=3)
            runs.append(run_runner(stack, client))
        median = statistics.median(runs)
        say(f"{len(tables)} tables: first {first:.1f}s, incremental {[round(r, 1) for r in runs]}")
        return {
            "tables": len(tables),
            "first_run_s": round(first, 1),
            "incremental_runs_s": [round(r, 1) for r in runs],
            "incremental_median_s": round(median, 1),
            "per_table_s": round(median / len(tables), 2),
        }
    finally:
        unwire_client(stack, client)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="persons (other tables scaled)")
    parser.add_argument("--changes", type=int, default=1000, help="per incremental run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--counts", default="1,5,15,all", help="table counts to measure")
    args = parser.parse_args()
    ordered = every_table()
    counts = [len(ordered) if c == "all" else int(c) for c in args.counts.split(",")]

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    stack = Stack()
    stack.up(progress=False)
    results = []
    for count in counts:
        say(f"{count} table(s): seeding {args.rows} persons, first run, {args.repeat} runs")
        results.append(measure(stack, ordered[:count], args, say))
    print(f"{'tables':>6} {'first run s':>12} {'incremental s (median)':>23} {'per table s':>12}")
    for r in results:
        print(
            f"{r['tables']:>6} {r['first_run_s']:>12} {r['incremental_median_s']:>23}"
            f" {r['per_table_s']:>12}"
        )
    print(
        json.dumps(
            {
                "benchmark": "table_scaling",
                "rows": args.rows,
                "changes": args.changes,
                "results": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
