"""Benchmark: ClientPipeline reconcile-to-Ready latency against the raw cost of its calls.

    uv run python benchmarks/operator_reconcile.py --n 1 --n 50

For each N it applies N ClientPipelines at once to a fresh local control plane
with the operator running as a process against the local stack, and measures:
- reconcile-to-Ready latency per pipeline (apply -> Ready=True observed), p50/p95;
- in the same run, the raw cost of what one pipeline needs, each call timed
  directly: two CREATE CATALOGs, the connector PUT (and its wait to RUNNING),
  the branch create, the CronJob create; the ratio p50 / raw;
- writes to every system during an idle period of several drift intervals;
- the operator's RSS with N pipelines.
It prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from clientpipelines.clients.errors import Conflict
from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.manifests import GROUP, LABEL_CLIENT, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from clientpipelines.operator import desired
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import parse_spec
from devstack import procs
from devstack.controlplane import ControlPlane
from devstack.operator import (
    QUIET_SCHEDULE,
    OperatorProcess,
    install_crd,
    pipeline_body,
    put_client_secret,
    wait_ready,
)
from devstack.procs import wait_for
from devstack.sampledata import ClientSource, SampleData
from devstack.stack import Stack, operator_env
from devstack.wiring import unwire_client

DRIFT_INTERVAL = 10.0
# Kafka Connect's config topic (devstack's worker): every connector PUT, pause,
# resume or delete appends a record to it, even one that changes nothing.
CONNECT_CONFIG_TOPIC = "_connect-configs"
OPERATOR_WORKERS = 20  # kopf's settings.execution.max_workers in handlers.configure


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class SystemsState:
    """What the systems themselves record of writes, at one moment (not the
    operator's own counters): Trino's clock (its query history has every CREATE
    and DROP CATALOG after it), the end of Kafka Connect's config topic, the
    clients' Nessie references (any commit, assign, create or delete moves one)
    and the API server's resourceVersions of the namespace's objects."""

    trino_now: str
    connect_config_end: int
    nessie_refs: dict[str, str]
    versions: dict[str, str]


def systems_state(
    stack: Stack, api: client.ApiClient, namespace: str, client_ids: list[str]
) -> SystemsState:
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    ep = stack.endpoints()
    ((now,),) = ep.trino().query("select cast(current_timestamp as varchar)")
    consumer = KafkaConsumer(bootstrap_servers=ep.kafka_bootstrap)
    try:
        parts = consumer.partitions_for_topic(CONNECT_CONFIG_TOPIC)
        if not parts:  # counting nothing would read as "no writes"
            raise RuntimeError(f"Kafka has no topic {CONNECT_CONFIG_TOPIC}")
        ends = consumer.end_offsets([TopicPartition(CONNECT_CONFIG_TOPIC, p) for p in parts])
    finally:
        consumer.close()
    nessie = ep.nessie()
    refs = {}
    for cid in client_ids:
        names = ClientNames(cid)
        for branch in ("main", names.staging_branch, names.run_lock_branch):
            ref = nessie.get_reference(branch)
            refs[branch] = ref.hash if ref else "-"
    objects = client.CustomObjectsApi(api)
    versions = {
        f"ClientPipeline/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
        for i in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    }
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    for kind, items in (
        ("CronJob", batch.list_namespaced_cron_job(namespace).items),
        ("Secret", core.list_namespaced_secret(namespace).items),
        ("ServiceAccount", core.list_namespaced_service_account(namespace).items),
    ):
        versions.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in items})
    return SystemsState(str(now), sum(ends.values()), refs, versions)


def systems_writes(stack: Stack, before: SystemsState, after: SystemsState) -> dict[str, Any]:
    """Writes between two states, as each system recorded them."""
    trino = stack.endpoints().trino()
    since, until = f"timestamp '{before.trino_now}'", f"timestamp '{after.trino_now}'"
    # The history is bounded (query.max-history): it proves "none" only if it still
    # reaches back to the start of the window.
    ((catalog_ddl, covers),) = trino.query(
        f"select count_if(created between {since} and {until}"
        r" and regexp_like(query, '(?i)^\s*(create|drop)\s+catalog')),"
        f" min(created) <= {since} from system.runtime.queries"
    )
    keys = before.versions.keys() | after.versions.keys()
    return {
        "trino_catalog_ddl": int(catalog_ddl),
        "trino_history_covers_window": bool(covers),
        "connect_config_records": after.connect_config_end - before.connect_config_end,
        "nessie_refs_moved": sum(
            1 for k in before.nessie_refs if before.nessie_refs[k] != after.nessie_refs.get(k)
        ),
        "k8s_objects_changed": sorted(
            k for k in keys if before.versions.get(k) != after.versions.get(k)
        ),
    }


def raw_cost(
    stack: Stack, api: client.ApiClient, namespace: str, rounds: int = 3
) -> dict[str, float]:
    """Median seconds of each call one pipeline needs, made directly."""
    timings: dict[str, list[float]] = {}

    def timed(what: str, run: Any) -> Any:
        started = time.perf_counter()
        result = run()
        timings.setdefault(what, []).append(time.perf_counter() - started)
        return result

    data = SampleData(stack)
    for _ in range(rounds):
        src = data.create(f"raw{uuid.uuid4().hex[:8]}", rows=40)
        cron = _make_pipeline(stack, api, namespace, src, timed)
        _remove_pipeline(stack, api, namespace, src, cron)
    return {k: statistics.median(v) for k, v in timings.items()}


def raw_burst(
    stack: Stack, api: client.ApiClient, namespace: str, n: int, workers: int
) -> list[float]:
    """Seconds from the start to each of `n` pipelines made directly, `workers` at a time.

    The same calls as `raw_cost`, all at once with the operator's concurrency: what
    the systems themselves allow for a burst (Trino creates catalogs one at a time;
    Kafka Connect rebalances for every new connector), with no operator involved.
    As the operator does, a worker never waits for a connector to start: it makes
    every call and moves on, and one poller (every 0.05 s, as `raw_cost` waits) sees each
    connector reach RUNNING. A pipeline is done when both are.
    """
    data = SampleData(stack)
    sources = [data.create(f"raw{uuid.uuid4().hex[:8]}", rows=40) for _ in range(n)]
    connect = KafkaConnectClient(stack.endpoints().connect_url)
    started = time.monotonic()
    calls_done: dict[str, float] = {}
    running: dict[str, float] = {}

    def one(src: ClientSource) -> None:
        try:
            _make_pipeline(stack, api, namespace, src, lambda _what, run: run(), wait_running=False)
        except BaseException:
            failed.set()
            raise
        calls_done[src.client_id] = time.monotonic() - started

    failed = threading.Event()  # a worker's failure ends the poller too

    def poll() -> None:
        deadline = time.monotonic() + 900
        while len(running) < n and time.monotonic() < deadline and not failed.is_set():
            for src in sources:
                cid = src.client_id
                if cid in running or cid not in calls_done:
                    continue
                if _connector_running(connect, ClientNames(cid).connector):
                    running[cid] = time.monotonic() - started
            time.sleep(0.05)  # as raw_cost's wait polls

    try:
        with ThreadPoolExecutor(workers + 1) as pool:
            poller = pool.submit(poll)
            for made in [pool.submit(one, src) for src in sources]:
                made.result()
            poller.result()
        if len(running) < n:
            raise TimeoutError(f"{n - len(running)} connectors never reached RUNNING")
        done = [max(calls_done[s.client_id], running[s.client_id]) for s in sources]
    finally:  # whatever was made, even if one pipeline failed
        for src in sources:
            client.BatchV1Api(api).delete_collection_namespaced_cron_job(
                namespace, label_selector=f"{LABEL_CLIENT}={src.client_id}"
            )
            unwire_client(stack, src.client_id)
    return done


def _connector_running(connect: KafkaConnectClient, name: str) -> bool:
    status = connect.status(name)
    return bool(
        status
        and status.state == "RUNNING"
        and status.tasks
        and all(t.state == "RUNNING" for t in status.tasks)
    )


def _make_pipeline(
    stack: Stack,
    api: client.ApiClient,
    namespace: str,
    src: ClientSource,
    timed: Any,
    *,
    wait_running: bool = True,
) -> dict[str, Any]:
    """Make every part of one pipeline by hand, each call through `timed` (and, with
    `wait_running`, the connector's start to RUNNING, timed on its own)."""
    op_settings = Settings.from_env(operator_env(stack.endpoints(), Path("unused")))
    ep = stack.endpoints()
    trino = ep.trino()
    connect = KafkaConnectClient(ep.connect_url)
    nessie = ep.nessie()
    cid = src.client_id
    body = pipeline_body(cid, src, secret="unused", tables=["provider", "care_site"])
    spec = parse_spec(cid, namespace, body["spec"])
    names = ClientNames(cid)
    for name, cat in sorted(desired.build_catalogs(spec, op_settings).items()):
        timed(
            f"create catalog ({cat.connector})",
            lambda n=name, c=cat: trino.create_catalog(n, c.connector, c.properties),
        )
    conf = desired.build_connector_config(
        spec, src.username, src.password, op_settings.kafka_bootstrap
    )
    timed(
        "connector PUT", lambda: _retry_conflicts(lambda: connect.put_config(names.connector, conf))
    )
    if wait_running:
        timed(
            "connector to RUNNING",
            lambda: wait_for(
                "RUNNING",
                lambda: _connector_running(connect, names.connector),
                interval=0.05,
                timeout=600,
            ),
        )
    main = nessie.get_reference("main")
    assert main is not None
    timed("branch create", lambda: nessie.create_branch(names.staging_branch, main))
    cron = desired.build_cronjob(spec, op_settings, {"name": cid, "uid": str(uuid.uuid4())})
    cron["metadata"].pop("ownerReferences")
    timed(
        "CronJob create",
        lambda: client.BatchV1Api(api).create_namespaced_cron_job(namespace, cron),
    )
    return cron


def _retry_conflicts(run: Any) -> None:
    """Kafka Connect answers 409 while it rebalances: the caller must come back."""
    deadline = time.monotonic() + 600
    while True:
        try:
            return run()
        except Conflict:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _remove_pipeline(
    stack: Stack, api: client.ApiClient, namespace: str, src: ClientSource, cron: dict[str, Any]
) -> None:
    client.BatchV1Api(api).delete_namespaced_cron_job(cron["metadata"]["name"], namespace)
    unwire_client(stack, src.client_id)


def _body(src: ClientSource) -> dict[str, Any]:
    """The ClientPipeline the operator gets for one benchmark source."""
    return pipeline_body(
        src.client_id,
        src,
        secret=f"{src.client_id}-db",
        tables=["provider", "care_site"],
        policy="Delete",
        schedule=QUIET_SCHEDULE,
    )


def run_n(
    n: int, cp: ControlPlane, stack: Stack, api: client.ApiClient, workdir: Path
) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    print(f"[N={n}] preparing {n} source databases", file=sys.stderr, flush=True)
    data = SampleData(stack)
    sources = []
    for _ in range(n + 1):  # the first one warms the operator up
        cid = f"b{uuid.uuid4().hex[:8]}"
        src = data.create(cid, rows=40)
        put_client_secret(api, namespace, f"{cid}-db", src)
        sources.append(src)

    raw = raw_cost(stack, api, namespace)
    print(f"[N={n}] the same calls for {n} pipelines at once, directly", file=sys.stderr)
    burst = raw_burst(stack, api, namespace, n, workers=OPERATOR_WORKERS)
    raw_total = sum(raw.values())
    raw_calls = sum(v for k, v in raw.items() if k != "connector to RUNNING")

    op = OperatorProcess(cp, stack, workdir)
    op.env["DRIFT_INTERVAL_SECONDS"] = str(DRIFT_INTERVAL)
    op.start()
    objects = client.CustomObjectsApi(api)
    # Warm-up: the operator answers its liveness probe before its watch streams
    # run; one pipeline taken to Ready (and deleted) first keeps that start-up out
    # of the latencies measured below.
    warm = sources.pop(0)
    all_sources = [warm, *sources]
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _body(warm))
    wait_ready(api, namespace, warm.client_id)
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, warm.client_id)
    wait_for(
        "the warm-up pipeline to be deleted",
        lambda: (
            not objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ),
        timeout=120,
    )
    applied: dict[str, float] = {}
    print(f"[N={n}] applying {n} ClientPipelines", file=sys.stderr, flush=True)
    for src in sources:
        applied[src.client_id] = time.monotonic()
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _body(src))
    ready_at: dict[str, float] = {}
    deadline = time.monotonic() + 120 + 3 * n
    while len(ready_at) < n and time.monotonic() < deadline:
        now = time.monotonic()
        for item in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]:
            name = item["metadata"]["name"]
            conds = (item.get("status") or {}).get("conditions") or []
            if name not in ready_at and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conds
            ):
                ready_at[name] = now
        time.sleep(0.2)
    latencies = [ready_at[c] - applied[c] for c in ready_at]
    print(
        f"[N={n}] {len(ready_at)}/{n} Ready; idle for {3 * DRIFT_INTERVAL:.0f}s",
        file=sys.stderr,
        flush=True,
    )

    # Settle: right after the last Ready, Kafka Connect may still be rebalancing over
    # the connectors just added (each one triggers a group rebalance). Writes in
    # these first drift cycles are counted apart from the idle ones.
    settle_before = op.metric("clientpipelines_writes_total")
    time.sleep(2 * DRIFT_INTERVAL)
    settle_writes = op.metric("clientpipelines_writes_total") - settle_before

    # Idle: nothing changes; the drift timer re-checks every system.
    before = {
        i["metadata"]["name"]: i
        for i in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    }
    versions = {k: v["metadata"]["resourceVersion"] for k, v in before.items()}
    ids = [s.client_id for s in sources]
    observed_before = systems_state(stack, api, namespace, ids)
    writes_before = op.metric("clientpipelines_writes_total")
    checks_before = op.metric("clientpipelines_reconciles_total")
    time.sleep(3 * DRIFT_INTERVAL)
    idle_writes = op.metric("clientpipelines_writes_total") - writes_before
    observed = systems_writes(stack, observed_before, systems_state(stack, api, namespace, ids))
    if observed["k8s_objects_changed"]:
        print(
            f"[N={n}] changed while idle: {observed['k8s_objects_changed'][:10]}", file=sys.stderr
        )
    if idle_writes:
        idle_log = [
            line
            for line in op.log.read_text().splitlines()[-4000:]
            if "Repaired" in line or "Unavailable" in line or "Error" in line
        ]
        print(
            f"[N={n}] writes while idle; operator log lines:\n  " + "\n  ".join(idle_log[-15:]),
            file=sys.stderr,
        )
    idle_checks = op.metric("clientpipelines_reconciles_total") - checks_before
    after = {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"]
        for i in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    }
    status_writes = sum(1 for k, v in after.items() if versions.get(k) != v)
    if status_writes:
        changed = next(k for k, v in after.items() if versions.get(k) != v)
        now_obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, changed)
        print(
            f"[N={n}] {changed} changed while idle:\n  before: "
            f"{json.dumps(before[changed].get('status'))}\n  after:  "
            f"{json.dumps(now_obj.get('status'))}\n  annotations: "
            f"{now_obj['metadata'].get('annotations')}",
            file=sys.stderr,
        )
    # Time spent inside the reconcile handlers, per part (mean of every reconcile).
    in_handler = {
        part: op.metric(f'clientpipelines_reconcile_duration_seconds_sum{{part="{part}"}}')
        / max(1.0, op.metric(f'clientpipelines_reconcile_duration_seconds_count{{part="{part}"}}'))
        for part in ("catalogs", "connector", "branch", "cronjob")
    }
    rss_mb = procs.group_rss_bytes(op.proc.pid) / 2**20 if op.proc else 0.0

    print(f"[N={n}] deleting", file=sys.stderr, flush=True)
    for src in sources:
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, src.client_id)
    wait_for(
        "every ClientPipeline to be cleaned up",
        lambda: (
            not objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ),
        timeout=120 + 2 * n,
    )
    op.stop()
    for src in all_sources:
        unwire_client(stack, src.client_id)

    return {
        "n": n,
        "ready": len(ready_at),
        "latency_p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "raw_cost_s": round(raw_total, 3),
        "raw_calls_only_s": round(raw_calls, 3),
        "raw_breakdown_s": {k: round(v, 3) for k, v in raw.items()},
        "ratio_p50_to_raw": round(percentile(latencies, 0.5) / raw_total, 2) if latencies else None,
        "raw_burst_p50_s": round(percentile(burst, 0.5), 3),
        "raw_burst_p95_s": round(percentile(burst, 0.95), 3),
        "ratio_p50_to_raw_burst": (
            round(percentile(latencies, 0.5) / percentile(burst, 0.5), 2) if latencies else None
        ),
        "settle_seconds": 2 * DRIFT_INTERVAL,
        "settle_external_writes": settle_writes,
        "idle_seconds": 3 * DRIFT_INTERVAL,
        "idle_part_checks": idle_checks,
        "idle_external_writes": idle_writes,
        "idle_status_writes": status_writes,
        # The same window, as the systems recorded it.
        "idle_observed": {
            **observed,
            "k8s_objects_changed": len(observed["k8s_objects_changed"]),
        },
        "operator_rss_mb": round(rss_mb, 1),
        "mean_part_reconcile_s": {k: round(v, 3) for k, v in in_handler.items()},
    }


def _observed_ddl(observed: dict[str, Any]) -> str:
    ddl = str(observed["trino_catalog_ddl"])
    return ddl if observed["trino_history_covers_window"] else f"{ddl} (history too short)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="pipelines (repeatable)")
    args = parser.parse_args()
    sizes = args.n or [1, 50]
    stack = Stack()
    stack.up(progress=False)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "cp", die_with_parent=True)
        try:
            cp.start()
            api = config.new_client_from_config(config_file=str(cp.kubeconfig))
            install_crd(api)
            for n in sizes:
                results.append(run_n(n, cp, stack, api, Path(tmp) / f"op{n}"))
        finally:
            cp.stop()
    header = (
        f"{'N':>4} {'ready':>6} {'p50 s':>7} {'p95 s':>7} {'raw s':>7} {'p50/raw':>8} "
        f"{'burst p50 s':>12} {'p50/burst':>10} "
        f"{'idle writes':>12} {'status writes':>14} {'RSS MB':>7} "
        f"{'idle, observed: catalog DDL':>28} {'Connect configs':>16} "
        f"{'Nessie refs':>12} {'k8s objects':>12}"
    )
    print(header)
    for r in results:
        print(
            f"{r['n']:>4} {r['ready']:>6} {r['latency_p50_s']:>7} {r['latency_p95_s']:>7} "
            f"{r['raw_cost_s']:>7} {r['ratio_p50_to_raw']:>8} {r['raw_burst_p50_s']:>12} "
            f"{r['ratio_p50_to_raw_burst']:>10} {r['idle_external_writes']:>12} "
            f"{r['idle_status_writes']:>14} {r['operator_rss_mb']:>7} "
            f"{_observed_ddl(r['idle_observed']):>28} "
            f"{r['idle_observed']['connect_config_records']:>16} "
            f"{r['idle_observed']['nessie_refs_moved']:>12} "
            f"{r['idle_observed']['k8s_objects_changed']:>12}"
        )
    print(json.dumps({"benchmark": "operator_reconcile", "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
