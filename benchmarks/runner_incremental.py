"""Benchmark: an incremental run against a full refresh, and CDC freshness.

    uv run python benchmarks/runner_incremental.py --rows 1000000 --changes 10000 --freshness 1000

Pass `--packages-dir` (dbt's packages as `dbt deps` lays them out) to run with
Elementary, as the runner image does.

On one client with `--rows` providers (or persons, events per table: `--tables`):
- one incremental run applying `--changes` inserts/updates/deletes, against a full
  refresh (every Kafka offset again) of the same tables, in the same run;
- a run with `--small-changes` changes, timed from process start to published;
- where each run's time went, per phase (the runner's own breakdown), medians;
- CDC freshness: for `--freshness` single-row changes, the time from the Postgres
  commit to the change being visible in the client's kafka catalog; p50/p95.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from clientpipelines.naming import ClientNames
from clientpipelines.runner.run import PHASES_PREFIX, phases_in_log
from devstack.sampledata import CLINICAL_TABLES, SAMPLE_TABLES, SampleData
from devstack.stack import Stack
from devstack.wiring import runner_env, unwire_client, wait_for_cdc, wire_client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_runner(stack: Stack, client: str, *extra: str) -> tuple[float, dict[str, float]]:
    """One run as the CronJob's container makes it: its wall time and its phases."""
    # What the operator's CronJob would give the run (the run contract): every model
    # of the client's tables (provider_care_site too when it has both).
    env = {**os.environ, **runner_env(stack, SampleData(stack).source(client))}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "clientpipelines.runner.cli", "run", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - started
    keep = os.environ.get("BENCH_OUTPUT_DIR")
    if keep:  # each run's full output, to see where its time went
        label = "full" if "--full-refresh" in extra else "incremental"
        Path(keep, f"{client}-{label}-{int(started)}.log").write_text(result.stdout)
    if result.returncode != 0:
        raise RuntimeError(f"runner failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return took, phases_in_log(result.stdout)


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per phase, the median over the runs (0 where a run did not have it)."""
    names = list(dict.fromkeys(k for run in runs for k in run))
    return {k: statistics.median(run.get(k, 0.0) for run in runs) for k in names}


def freshness(stack: Stack, client: str, samples: int, rate: float) -> list[float]:
    """Commit `samples` one-row updates at `rate` per second while polling the kafka catalog.

    Each change carries a unique marker; its lag is from just after its commit to the
    return of the first catalog query that shows it (an upper bound: it includes that
    query's own time). Writing and polling overlap, so 1,000 samples take minutes.
    """
    ep = stack.endpoints()
    names = ClientNames(client)
    trino = ep.trino()
    src = SampleData(stack).source(client)
    topic = f'{names.cdc_catalog}.default."{names.topic("public", "provider")}"'
    (high,) = trino.query(f"select coalesce(max(_partition_offset), -1) from {topic}")[0]
    run = uuid.uuid4().hex[:6]
    committed: dict[str, float] = {}
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with psycopg.connect(src.dsn(), autocommit=True) as conn:
                for i in range(samples):
                    marker = f"fresh-{run}-{i}"
                    conn.execute(
                        "update provider set provider_source_value = %s where provider_id = "
                        "(select min(provider_id) from provider)",
                        (marker,),
                    )
                    committed[marker] = time.monotonic()
                    time.sleep(1 / rate)
        except BaseException as exc:  # reported by the poller below
            failure.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + samples / rate + 120
    while len(seen) < samples and not failure:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{samples - len(seen)} changes not visible in {topic}")
        rows = trino.query(
            "select json_extract_scalar(_message, '$.after.provider_source_value'),"
            f" _partition_offset from {topic} where _partition_offset > {high}"
        )
        now = time.monotonic()
        for marker, offset in rows:
            high = max(high, offset)
            # Seen maybe before the writer recorded its commit time: that lag is ~0.
            if marker and marker.startswith(f"fresh-{run}-") and marker not in seen:
                seen[marker] = now
    if failure:
        raise RuntimeError("writing the changes failed") from failure[0]
    writer.join()
    return [max(0.0, seen[m] - committed[m]) for m in seen]


@dataclass
class Measured:
    first: float = 0.0
    incremental: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    # Process start to main moving, for runs of --small-changes changes.
    small: list[float] = field(default_factory=list)
    phases: dict[str, list[dict[str, float]]] = field(
        default_factory=lambda: {
            "incremental": [],
            "full refresh": [],
            "small": [],
            "continuous": [],
        }
    )
    lags: list[float] = field(default_factory=list)
    # Continuous mode: Postgres commit to visible in `lake` (main).
    published_lags: list[float] = field(default_factory=list)
    batches: int = 0


def published_freshness(
    stack: Stack, client: str, seconds: float, rate: float, packages_dir: str | None, say: Any
) -> tuple[list[float], list[dict[str, float]]]:
    """Continuous mode: `rate` one-row updates a second for `seconds`, each to its own
    provider row with a unique marker, while the runner publishes micro-batches; each
    change's lag is from just after its Postgres commit to the return of the first
    query of `lake` (main, what analysts read) that shows it. Returns the lags and
    each batch's phases (the runner's `phases:` lines)."""
    env = {**os.environ, **runner_env(stack, SampleData(stack).source(client))}
    argv = [sys.executable, "-m", "clientpipelines.runner.cli", "run", "--continuous"]
    argv += ["--interval", "1"]
    if packages_dir:
        argv += ["--packages-dir", packages_dir]
    log = Path(os.environ.get("BENCH_OUTPUT_DIR") or tempfile.gettempdir(), f"{client}-cont.log")
    ep = stack.endpoints()
    trino = ep.trino()
    table = f"lake.{ClientNames(client).lake_schema}.provider"
    run = uuid.uuid4().hex[:6]
    samples = int(seconds * rate)
    committed: dict[str, float] = {}
    failure: list[BaseException] = []
    src = SampleData(stack).source(client)
    with psycopg.connect(src.dsn()) as conn:
        ids = [r[0] for r in conn.execute(
            "select provider_id from provider order by provider_id limit %s", (samples,)
        )]  # fmt: skip
    samples = len(ids)  # one row per change: fewer when the table is smaller

    def write() -> None:
        try:
            with psycopg.connect(src.dsn(), autocommit=True) as conn:
                start = time.monotonic()
                for i, provider_id in enumerate(ids):
                    marker = f"cont-{run}-{i}"
                    conn.execute(
                        "update provider set provider_source_value = %s where provider_id = %s",
                        (marker, provider_id),
                    )
                    committed[marker] = time.monotonic()
                    time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        except BaseException as exc:  # reported below
            failure.append(exc)

    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            say(f"continuous runner started (log: {log}); waiting for its first batch")
            time.sleep(5)
            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            seen: dict[str, float] = {}
            deadline = time.monotonic() + seconds + 300
            while len(seen) < samples and not failure:
                if proc.poll() is not None:
                    raise RuntimeError(f"the continuous runner exited {proc.returncode}: {log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{samples - len(seen)} changes never published")
                rows = trino.query(
                    f"select provider_source_value from {table}"
                    f" where provider_source_value like 'cont-{run}-%'"
                )
                now = time.monotonic()
                for (marker,) in rows:
                    seen.setdefault(marker, now)
                time.sleep(0.2)
            if failure:
                raise RuntimeError("writing the changes failed") from failure[0]
            writer.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
    batches = [
        phases_in_log(line)
        for line in log.read_text().splitlines()
        if line.startswith(PHASES_PREFIX)
    ]
    return [max(0.0, seen[m] - committed[m]) for m in seen if m in committed], batches


def measure(
    stack: Stack, client: str, args: argparse.Namespace, say: Any, started: float
) -> Measured:
    """The timed part of the benchmark, on a wired client."""
    m = Measured()
    extra = ("--packages-dir", args.packages_dir) if args.packages_dir else ()
    wait_for_cdc(stack, client, timeout=3600, quiet_for=5)
    say(f"snapshot in Kafka after {time.monotonic() - started:.0f}s; first (full) run")
    m.first, _ = run_runner(stack, client, *extra)
    say(f"first run {m.first:.1f}s")

    for i in range(args.repeat):
        SampleData(stack).apply_changes(client, count=args.changes, seed=100 + i, batch=1000)
        wait_for_cdc(stack, client, timeout=600, quiet_for=3)
        took, phases = run_runner(stack, client, *extra)
        m.incremental.append(took)
        m.phases["incremental"].append(phases)
        say(f"incremental run with {args.changes} changes: {took:.1f}s {phases}")
        took, phases = run_runner(stack, client, "--full-refresh", *extra)
        m.full.append(took)
        m.phases["full refresh"].append(phases)
        say(f"full refresh: {took:.1f}s {phases}")
        if args.small_changes:
            SampleData(stack).apply_changes(client, count=args.small_changes, seed=500 + i)
            wait_for_cdc(stack, client, timeout=600, quiet_for=3)
            took, phases = run_runner(stack, client, *extra)
            m.small.append(phases.get("to_published", took))
            m.phases["small"].append(phases)
            say(f"run with {args.small_changes} changes: published after {m.small[-1]:.1f}s")

    if args.freshness:
        say(f"freshness over {args.freshness} single-row changes")
        m.lags = freshness(stack, client, args.freshness, args.freshness_rate)
    if args.continuous:
        say(f"continuous mode: {args.freshness_rate:g} changes/s for {args.continuous:g}s")
        m.published_lags, batches = published_freshness(
            stack, client, args.continuous, args.freshness_rate, args.packages_dir, say
        )
        m.batches = len(batches)
        # The first batch parses the project and catches up: the steady state is after.
        m.phases["continuous"] = batches[1:]
    return m


def print_phases(m: Measured, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Where the runs' time went, per phase (medians), one column per kind of run."""
    kinds = {k: median_phases(v) for k, v in m.phases.items() if v}
    if not kinds:
        return {}
    names = list(dict.fromkeys(p for phases in kinds.values() for p in phases))
    labels = {
        "incremental": f"incr. {args.changes}",
        "full refresh": "full refresh",
        "small": f"incr. {args.small_changes}",
        "continuous": "cont. batch",
    }
    print(f"{'phase (median s)':<18}" + "".join(f"{labels[k]:>14}" for k in kinds))
    for name in names:
        print(f"{name:<18}" + "".join(f"{kinds[k].get(name, 0.0):>14.2f}" for k in kinds))
    return {k: {p: round(v, 2) for p, v in phases.items()} for k, phases in kinds.items()}


def _shown(value: object) -> object:
    return "-" if value is None else value


def _median(values: list[float]) -> float | None:
    """Rounded median; None when nothing was timed (`--repeat 0`: continuous mode only)."""
    return round(statistics.median(values), 1) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--freshness", type=int, default=1000)
    parser.add_argument(
        "--freshness-rate", type=float, default=10.0, help="single-row changes per second"
    )
    parser.add_argument("--repeat", type=int, default=1, help="incremental/full pairs to time")
    parser.add_argument(
        "--continuous",
        type=float,
        default=0,
        help="seconds of --freshness-rate changes with the runner in continuous mode, "
        "timed from Postgres commit to published in lake (0: not measured)",
    )
    parser.add_argument(
        "--small-changes",
        type=int,
        default=100,
        help="changes in the small run timed to published after each pair (0: none)",
    )
    parser.add_argument(
        "--packages-dir",
        default=os.environ.get("DBT_PACKAGES_DIR") or None,
        help="dbt packages as `dbt deps` lays them out, to run with Elementary as the "
        "runner image does ($DBT_PACKAGES_DIR)",
    )
    parser.add_argument(
        "--tables",
        default=",".join(SAMPLE_TABLES),
        help="comma-separated CDM tables, or 'clinical' (freshness needs provider)",
    )
    args = parser.parse_args()
    tables = CLINICAL_TABLES if args.tables == "clinical" else tuple(args.tables.split(","))
    if args.freshness and "provider" not in tables:
        parser.error("--freshness measures on provider: add it to --tables or pass 0")

    stack = Stack()
    stack.up(progress=False)
    client = f"bench{uuid.uuid4().hex[:6]}"
    say = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"seeding {len(tables)} table(s) for {args.rows} persons/providers and wiring {client}")
    started = time.monotonic()
    wire_client(stack, client, rows=args.rows, tables=tables)
    try:
        m = measure(stack, client, args, say, started)
    finally:
        if not os.environ.get("BENCH_KEEP_CLIENT"):  # its 1M-row database and topics
            unwire_client(stack, client)
    incremental, full, lags = m.incremental, m.full, m.lags
    result = {
        "benchmark": "runner_incremental",
        "tables": len(tables),
        "rows": args.rows,
        "changes": args.changes,
        "elementary": bool(args.packages_dir),
        "first_run_s": round(m.first, 1),
        "incremental_run_s": _median(incremental),
        "incremental_runs_s": [round(t, 1) for t in incremental],
        "full_refresh_s": _median(full),
        "full_refreshes_s": [round(t, 1) for t in full],
        "speedup_full_over_incremental": (
            round(statistics.median(full) / statistics.median(incremental), 1)
            if incremental and full
            else None
        ),
        "small_changes": args.small_changes,
        "small_to_published_s": _median(m.small),
        "freshness_samples": len(lags),
        "freshness_rate_per_s": args.freshness_rate,
        "freshness_p50_s": round(percentile(lags, 0.5), 3) if lags else None,
        "freshness_p95_s": round(percentile(lags, 0.95), 3) if lags else None,
        "continuous_seconds": args.continuous,
        "continuous_batches": m.batches,
        "published_samples": len(m.published_lags),
        "published_p50_s": (
            round(percentile(m.published_lags, 0.5), 2) if m.published_lags else None
        ),
        "published_p95_s": (
            round(percentile(m.published_lags, 0.95), 2) if m.published_lags else None
        ),
    }
    print(
        f"{'rows':>9} {'changes':>8} {'incremental s':>14} {'full refresh s':>15} "
        f"{'speedup':>8} {'fresh p50 s':>12} {'fresh p95 s':>12}"
    )
    print(
        f"{result['rows']:>9} {result['changes']:>8} {_shown(result['incremental_run_s']):>14} "
        f"{_shown(result['full_refresh_s']):>15} "
        f"{_shown(result['speedup_full_over_incremental']):>8} "
        f"{result['freshness_p50_s'] or '-':>12} {result['freshness_p95_s'] or '-':>12}"
    )
    result["phases"] = print_phases(m, args)
    if m.published_lags:
        print(
            f"continuous mode, {args.freshness_rate:g} changes/s for {args.continuous:g}s: "
            f"{len(m.published_lags)} changes in {m.batches} batches; published (Postgres "
            f"commit to visible in lake) p50 {result['published_p50_s']} s, "
            f"p95 {result['published_p95_s']} s"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
