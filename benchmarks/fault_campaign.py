"""Fault campaign: changes -> pipeline run, with one component killed at a random point.

    uv run python benchmarks/fault_campaign.py --cycles 50

A fresh local control plane, the platform stack, the operator as a process and
CLIENTS ClientPipelines (deletionPolicy Delete) onboarded through the chart. Each
cycle applies changes to one client's Postgres, starts a pipeline run as the
CronJob would (`kubectl create job --from`, executed by the local kubelet), and
at a random point in the run stops one component: Kafka Connect, Kafka, Trino,
Nessie, S3, the operator (SIGKILL), or the runner itself (SIGKILL, anywhere
including mid-merge). The component is started again; the cycle then measures
how long until every pipeline is Ready again, and re-runs the client's pipeline
until it publishes (a killed run's lock expires at its deadline, 60 s).

At the end, every client's published tables are compared with its source row by
row (no row missing, none extra, no duplicates), the clients are deleted, and
every system is checked for leftovers. It prints one line per cycle, a table of
faults, and the worst recovery; exit 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
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

from kubernetes import client, config

from clientpipelines.manifests import GROUP, PLURAL, VERSION
from devstack.controlplane import ControlPlane
from devstack.demo import apply_client, run_pipeline_once
from devstack.operator import (
    QUIET_SCHEDULE,
    OperatorProcess,
    get_pipeline,
    install_crd,
    wait_ready,
)
from devstack.paths import REPO_ROOT
from devstack.procs import wait_for
from devstack.sampledata import SampleData
from devstack.stack import Stack
from devstack.wiring import lake_differences, wait_for_cdc

# The same leftover check the test suite ends with (tests/platform_state.py).
sys.path.insert(0, str(REPO_ROOT))
from tests.platform_state import leftovers

NAMESPACE = "faults"
VALUES = REPO_ROOT / "clients" / "acme-health" / "values.yaml"
SERVICES = ("connect", "kafka", "trino", "nessie", "s3proxy")
FAULTS = (*SERVICES, "operator", "runner")
RUN_DEADLINE = 60  # the CRD's minimum: a killed run's lock expires after it
READY_WITHIN = 60.0  # the goal: Ready again within this long after recovery


@dataclass
class Cycle:
    number: int
    client: str
    fault: str
    after: float  # seconds into the run when the fault hit
    first_exit: int = -1
    runs_to_publish: int = 0
    ready_after: float | None = None  # seconds from the restart to every pipeline Ready
    notes: list[str] = field(default_factory=list)


def kill_runner() -> bool:
    """SIGKILL the runner the local kubelet started here (no cleanup of any kind).

    Only this process's children: runs of other tests on the machine are not ours.
    """
    found = subprocess.run(
        ["pkill", "-KILL", "-P", str(os.getpid()), "-f", "clientpipelines-runner run"],
        check=False,
    ).returncode
    return found == 0


def inject(fault: str, stack: Stack, operator: OperatorProcess) -> None:
    if fault in SERVICES:
        stack.stop_service(fault)
    elif fault == "operator":
        operator.kill()
    elif fault == "runner":
        kill_runner()


def recover(fault: str, stack: Stack, operator: OperatorProcess) -> None:
    if fault in SERVICES:
        stack.up(progress=False)
    elif fault == "operator":
        operator.start()


def all_ready(api: client.ApiClient, clients: list[str], timeout: float) -> float | None:
    started = time.monotonic()
    try:
        for cid in clients:
            wait_ready(
                api, NAMESPACE, cid, timeout=max(1.0, timeout - (time.monotonic() - started))
            )
    except AssertionError:  # wait_for's timeout
        return None
    return time.monotonic() - started


def publish(api: client.ApiClient, kubeconfig: Path, cid: str, tries: int = 12) -> int:
    """Run the client's pipeline until it publishes; returns how many runs it took."""
    for n in range(1, tries + 1):
        if run_pipeline_once(api, kubeconfig, cid, NAMESPACE) == 0:
            return n
        time.sleep(10)  # a service still warming up, or a killed run's lock not expired yet
    raise RuntimeError(f"{cid}: no run published after {tries} tries")


def campaign(args: argparse.Namespace, cp: ControlPlane, stack: Stack, workdir: Path) -> int:
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    install_crd(api)
    operator = OperatorProcess(cp, stack, workdir / "operator", extra_env={})
    operator.start()
    rng = random.Random(args.seed)
    clients = [f"fc{i}{uuid.uuid4().hex[:5]}" for i in range(args.clients)]
    cycles: list[Cycle] = []
    failures: list[str] = []
    try:
        for cid in clients:
            apply_client(
                api,
                stack,
                cid,
                rows=args.rows,
                values_file=VALUES,
                namespace=NAMESPACE,
                deletion_policy="Delete",
                schedule=QUIET_SCHEDULE,
                tables=args.tables.split(",") if args.tables else None,
            )
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                PLURAL,
                cid,
                {"spec": {"transform": {"activeDeadlineSeconds": RUN_DEADLINE}}},
            )
        for cid in clients:
            wait_ready(api, NAMESPACE, cid)
            wait_for_cdc(stack, cid)
            publish(api, cp.kubeconfig, cid)
        print(f"{len(clients)} clients onboarded and published; {args.cycles} cycles", flush=True)

        for number in range(1, args.cycles + 1):
            cycle = Cycle(
                number,
                rng.choice(clients),
                FAULTS[(number - 1) % len(FAULTS)],  # every fault as often as the others
                round(rng.uniform(0.0, args.max_delay), 1),
            )
            SampleData(stack).apply_changes(cycle.client, count=args.changes, seed=number)
            wait_for_cdc(stack, cycle.client, timeout=60)
            outcome: dict[str, int] = {}

            def run_once(cid: str, into: dict[str, int]) -> None:
                into["exit"] = run_pipeline_once(api, cp.kubeconfig, cid, NAMESPACE)

            run = threading.Thread(target=run_once, args=(cycle.client, outcome))
            run.start()
            time.sleep(cycle.after)
            inject(cycle.fault, stack, operator)
            time.sleep(args.down)
            recover(cycle.fault, stack, operator)
            restarted = time.monotonic()
            run.join(timeout=600)
            cycle.first_exit = outcome.get("exit", -1)
            ready = all_ready(api, clients, timeout=180)
            cycle.ready_after = None if ready is None else time.monotonic() - restarted
            if cycle.ready_after is None or cycle.ready_after > READY_WITHIN:
                cycle.notes.append("slow to Ready")
            wait_for_cdc(stack, cycle.client, timeout=120)
            cycle.runs_to_publish = (
                0 if cycle.first_exit == 0 else publish(api, cp.kubeconfig, cycle.client)
            )
            cycles.append(cycle)
            ready_s = "never" if cycle.ready_after is None else f"{cycle.ready_after:.1f}"
            print(
                f"cycle {number:3d}: {cycle.fault:8s} at {cycle.after:4.1f}s -> first run exit"
                f" {cycle.first_exit}, republished in {cycle.runs_to_publish} run(s),"
                f" Ready after {ready_s} s {' '.join(cycle.notes)}",
                flush=True,
            )

        # Every change published: the lake equals each source, row by row.
        for cid in clients:
            wait_for_cdc(stack, cid)
            publish(api, cp.kubeconfig, cid)
            diffs = lake_differences(stack, cid)
            if not all(d == 0 and n == lake for n, lake, d in diffs.values()):
                failures.append(f"{cid}: lake differs from the source: {diffs}")
    finally:
        for cid in clients:
            with contextlib.suppress(client.exceptions.ApiException):
                client.CustomObjectsApi(api).delete_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, cid
                )
        for cid in clients:
            wait_for(
                f"{cid} to be deleted",
                lambda c=cid: get_pipeline(api, NAMESPACE, c) is None,
                timeout=180,
            )
        operator.stop()
    left = {what: names for what, names in leftovers(stack.endpoints()).items() if names}
    if left:
        failures.append(f"left on the platform: {left}")
    report(cycles, failures)
    return 1 if failures else 0


def report(cycles: list[Cycle], failures: list[str]) -> None:
    print(
        "\n| fault | injected | first run failed | runs to publish (max) |"
        " Ready after restart: median / worst |"
    )
    print("|---|---:|---:|---:|---:|")
    for fault in FAULTS:
        mine = [c for c in cycles if c.fault == fault]
        if not mine:
            continue
        ready = [c.ready_after for c in mine if c.ready_after is not None]
        slow = sum(1 for c in mine if c.ready_after is None)
        print(
            f"| {fault} | {len(mine)} | {sum(1 for c in mine if c.first_exit != 0)} |"
            f" {max(c.runs_to_publish for c in mine)} |"
            f" {statistics.median(ready):.1f} s / {max(ready):.1f} s"
            + (f" ({slow} never within 180 s)" if slow else "")
            + " |"
        )
    ready_all = [c.ready_after for c in cycles if c.ready_after is not None]
    worst = max(ready_all) if ready_all else None
    print(f"\nworst recovery (restart -> every pipeline Ready): {worst and round(worst, 1)} s")
    print(
        "checks: "
        + ("; ".join(failures) if failures else "lake equals every source row by row, no leftovers")
    )
    print(
        json.dumps(
            {
                "cycles": len(cycles),
                "failures": failures,
                "worst_ready_s": worst,
                "over_60s": sum(
                    1 for c in cycles if c.ready_after is None or c.ready_after > READY_WITHIN
                ),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--changes", type=int, default=20, help="changes per cycle")
    parser.add_argument("--max-delay", type=float, default=12.0, help="latest fault, s into a run")
    parser.add_argument("--down", type=float, default=3.0, help="seconds a component stays down")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tables",
        help="comma-separated CDM tables instead of the client values' (e.g. provider,care_site:"
        " shorter runs, so more cycles in the same time)",
    )
    args = parser.parse_args()
    stack = Stack()
    stack.up(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "cp", die_with_parent=True)
        cp.start()
        try:
            return campaign(args, cp, stack, Path(tmp))
        finally:
            cp.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
