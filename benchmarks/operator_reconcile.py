"""Benchmark: ClientPipeline reconcile-to-Ready latency against the raw cost of its calls.

    uv run python benchmarks/operator_reconcile.py --n 1 --n 50
    DEVSTACK_TRINO_HEAP=14g uv run python benchmarks/operator_reconcile.py \
        --full-reload 1000 --drift-interval 300 --idle-seconds 330

For each N it applies N ClientPipelines at once (`--n`: CDC pipelines, each with
its own source database and Debezium connector; `--full-reload`: full-reload
pipelines, no connector, all reading one source database, for the count: Postgres'
WAL senders bound how many connectors one server can feed) to a fresh local control
plane with the operator running as a process against the local stack, and measures:
- reconcile-to-Ready latency per pipeline (apply -> Ready=True observed), p50/p95;
- in the same run, the raw cost of what one pipeline needs, each call timed
  directly: two CREATE CATALOGs, the connector PUT (and its wait to RUNNING; CDC
  only), the branch create, the CronJob create; the ratio p50 / raw;
- writes to every system during an idle period (by default three drift
  intervals), as the systems record them;
- the operator's RSS with N pipelines.
It prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from clientpipelines.clients.nessie import NessieClient, Reference
from clientpipelines.manifests import GROUP, LABEL_CLIENT, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from clientpipelines.operator import desired
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import parse_spec
from clientpipelines.trino_access import write_private
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

# Seconds after the last Ready before the idle window: Kafka Connect may still be
# rebalancing over the connectors just added (each one triggers a group rebalance).
SETTLE_SECONDS = 20.0
# Kafka Connect's config topic (devstack's worker): every connector PUT, pause,
# resume or delete appends a record to it, even one that changes nothing.
CONNECT_CONFIG_TOPIC = "_connect-configs"
PARTS = ("catalogs", "connector", "branch", "cronjob")  # the operator's metric labels
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
    and the API server's resourceVersions of the namespace's objects (Events too)."""

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
    heads = _nessie_heads(ep.nessie())
    refs = {}
    for cid in client_ids:
        names = ClientNames(cid)
        for branch in ("main", names.staging_branch, names.run_lock_branch):
            refs[branch] = heads.get(branch, "-")
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
        # A write the operator makes shows as an Event (Reconciled, Repaired).
        ("Event", core.list_namespaced_event(namespace).items),
    ):
        versions.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in items})
    return SystemsState(str(now), sum(ends.values()), refs, versions)


def _nessie_heads(nessie: NessieClient) -> dict[str, str]:
    """Every Nessie reference's head, in pages (one request per client would be
    thousands at N=1000)."""
    heads: dict[str, str] = {}
    token = None
    while True:
        params = {"maxRecords": "500", **({"pageToken": token} if token else {})}
        page = nessie.request("GET", "/trees", params=params).json()
        heads.update({r["name"]: r["hash"] for r in page.get("references") or []})
        token = page.get("token")
        if not page.get("hasMore") or not token:
            return heads


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


def make_sources(stack: Stack, n: int, mode: str) -> tuple[list[ClientSource], list[str]]:
    """Sources for `n` pipelines, and the ids whose sample databases were made: CDC,
    one database each; full-reload, one database that every pipeline reads, each
    under its own client id (and its own Secret)."""
    data = SampleData(stack)
    if mode == "cdc":
        made = [data.create(f"b{uuid.uuid4().hex[:8]}", rows=40) for _ in range(n)]
        return made, [s.client_id for s in made]
    shared = data.create(f"bsrc{uuid.uuid4().hex[:6]}", rows=40)
    reads = [dataclasses.replace(shared, client_id=f"b{uuid.uuid4().hex[:8]}") for _ in range(n)]
    return reads, [shared.client_id]


def clean_up(
    stack: Stack, api: client.ApiClient, namespace: str, ids: list[str], databases: list[str]
) -> None:
    """Remove whatever is left of the clients `ids` and the sample `databases`.

    What is left is found with one listing per system, and only that is removed."""
    ep = stack.endpoints()
    catalogs, heads = ep.trino().catalogs(), _nessie_heads(ep.nessie())
    crons = {
        (c.metadata.labels or {}).get(LABEL_CLIENT)
        for c in client.BatchV1Api(api).list_namespaced_cron_job(namespace).items
    }
    connect = KafkaConnectClient(ep.connect_url)
    connectors = set(connect.request("GET", "/connectors").json())
    trino, nessie = ep.trino(), ep.nessie()
    for cid in ids:
        names = ClientNames(cid)
        if cid in crons:
            client.BatchV1Api(api).delete_collection_namespaced_cron_job(
                namespace, label_selector=f"{LABEL_CLIENT}={cid}"
            )
        if names.connector in connectors or cid in databases:
            unwire_client(stack, cid)
            continue
        # No connector, no database: catalogs, branches and a login file are all a
        # full-reload pipeline made (unwiring each of a thousand would take minutes).
        for catalog in desired.owned_catalog_names(cid):
            if catalog in catalogs:
                trino.drop_catalog(catalog)
        for branch in (names.staging_branch, names.run_lock_branch):
            if branch in heads:
                nessie.delete_branch(Reference(branch, heads[branch]))
        if ep.trino_credentials_dir:
            login = Path(ep.trino_credentials_dir) / f"{names.source_catalog}.properties"
            login.unlink(missing_ok=True)
    for cid in set(databases) - set(ids):
        unwire_client(stack, cid)


def raw_cost(
    stack: Stack, api: client.ApiClient, namespace: str, mode: str, rounds: int = 3
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
        cron = _make_pipeline(stack, api, namespace, src, mode, timed)
        _remove_pipeline(stack, api, namespace, src, cron)
    return {k: statistics.median(v) for k, v in timings.items()}


def raw_burst(
    stack: Stack, api: client.ApiClient, namespace: str, n: int, mode: str, workers: int
) -> list[float]:
    """Seconds from the start to each of `n` pipelines made directly, `workers` at a time.

    The same calls as `raw_cost`, all at once with the operator's concurrency: what
    the systems themselves allow for a burst (Trino creates catalogs one at a time;
    Kafka Connect rebalances for every new connector), with no operator involved.
    As the operator does, a worker never waits for a connector to start: it makes
    every call and moves on, and one poller (every 0.05 s, as `raw_cost` waits) sees each
    connector reach RUNNING. A pipeline is done when both are (full-reload: when
    its calls are).
    """
    sources, databases = make_sources(stack, n, mode)
    running: dict[str, float] = {}
    if mode != "cdc":  # nothing to wait for
        running = dict.fromkeys((s.client_id for s in sources), 0.0)
    connect = KafkaConnectClient(stack.endpoints().connect_url)
    started = time.monotonic()
    calls_done: dict[str, float] = {}

    def one(src: ClientSource) -> None:
        try:
            _make_pipeline(
                stack, api, namespace, src, mode, lambda _what, run: run(), wait_running=False
            )
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
        clean_up(stack, api, namespace, [s.client_id for s in sources], databases)
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
    mode: str,
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
    body = pipeline_body(cid, src, secret="unused", tables=["provider", "care_site"], mode=mode)
    spec = parse_spec(cid, namespace, body["spec"])
    names = ClientNames(cid)
    catalogs = desired.build_catalogs(
        spec, op_settings, username=src.username, password=src.password
    )
    for name, cat in sorted(catalogs.items()):
        if cat.credentials_file:  # a full-reload catalog reads its login from a file
            path, text = cat.credentials_file
            timed("credentials file", lambda p=path, t=text: write_private(Path(p), t))
        timed(
            f"create catalog ({cat.connector})",
            lambda n=name, c=cat: trino.create_catalog(n, c.connector, c.properties),
        )
    if spec.cdc:
        conf = desired.build_connector_config(
            spec, src.username, src.password, op_settings.kafka_bootstrap
        )
        timed(
            "connector PUT",
            lambda: _retry_conflicts(lambda: connect.put_config(names.connector, conf)),
        )
    if spec.cdc and wait_running:
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


def _body(src: ClientSource, mode: str) -> dict[str, Any]:
    """The ClientPipeline the operator gets for one benchmark source."""
    return pipeline_body(
        src.client_id,
        src,
        secret=f"{src.client_id}-db",
        tables=["provider", "care_site"],
        policy="Delete",
        schedule=QUIET_SCHEDULE,
        mode=mode,
    )


@dataclass(frozen=True)
class Scenario:
    n: int
    mode: str  # the pipelines' spec.ingestion.mode
    drift_interval: float  # the operator's DRIFT_INTERVAL_SECONDS
    idle_seconds: float

    @property
    def tag(self) -> str:
        return f"[{self.mode} N={self.n}]"


def run_n(
    sc: Scenario, cp: ControlPlane, stack: Stack, api: client.ApiClient, workdir: Path
) -> dict[str, Any]:
    n, mode, tag = sc.n, sc.mode, sc.tag
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    print(f"{tag} preparing the sources of {n} pipelines", file=sys.stderr, flush=True)
    sources, databases = make_sources(stack, n + 1, mode)  # the first warms the operator up
    for src in sources:
        put_client_secret(api, namespace, f"{src.client_id}-db", src)

    raw = raw_cost(stack, api, namespace, mode)
    print(f"{tag} the same calls for {n} pipelines at once, directly", file=sys.stderr)
    burst = raw_burst(stack, api, namespace, n, mode, workers=OPERATOR_WORKERS)
    raw_total = sum(raw.values())
    raw_calls = sum(v for k, v in raw.items() if k != "connector to RUNNING")

    op = OperatorProcess(cp, stack, workdir)
    op.env["DRIFT_INTERVAL_SECONDS"] = str(sc.drift_interval)
    op.start()
    objects = client.CustomObjectsApi(api)
    # Warm-up: the operator answers its liveness probe before its watch streams
    # run; one pipeline taken to Ready (and deleted) first keeps that start-up out
    # of the latencies measured below.
    warm = sources.pop(0)
    all_sources = [warm, *sources]
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _body(warm, mode))
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
    print(f"{tag} applying {n} ClientPipelines", file=sys.stderr, flush=True)
    for src in sources:
        applied[src.client_id] = time.monotonic()
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _body(src, mode))
    ready_at: dict[str, float] = {}
    deadline = time.monotonic() + 120 + 3 * n
    last_progress = 0.0
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
        if now - last_progress > 30:  # a thousand pipelines take minutes
            last_progress = now
            print(f"{tag} {len(ready_at)}/{n} Ready", file=sys.stderr, flush=True)
        time.sleep(0.2 if n < 200 else 2.0)
    latencies = [ready_at[c] - applied[c] for c in ready_at]
    print(
        f"{tag} {len(ready_at)}/{n} Ready; idle for {sc.idle_seconds:.0f}s",
        file=sys.stderr,
        flush=True,
    )

    # Settle: writes in the first seconds after the last Ready (Connect rebalancing)
    # are counted apart from the idle ones.
    settle_before = op.metric("clientpipelines_writes_total")
    time.sleep(SETTLE_SECONDS)
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
    by_part_before = {p: op.metric("clientpipelines_writes_total", f'part="{p}"') for p in PARTS}
    checks_before = op.metric("clientpipelines_reconciles_total")
    time.sleep(sc.idle_seconds)
    idle_writes = op.metric("clientpipelines_writes_total") - writes_before
    idle_writes_by_part = {
        p: written
        for p, was in by_part_before.items()
        if (written := op.metric("clientpipelines_writes_total", f'part="{p}"') - was)
    }
    observed = systems_writes(stack, observed_before, systems_state(stack, api, namespace, ids))
    if observed["k8s_objects_changed"]:
        print(f"{tag} changed while idle: {observed['k8s_objects_changed'][:10]}", file=sys.stderr)
    if idle_writes:
        idle_log = [
            line
            for line in op.log.read_text().splitlines()[-4000:]
            if "Repaired" in line or "Unavailable" in line or "Error" in line
        ]
        print(
            f"{tag} writes while idle; operator log lines:\n  " + "\n  ".join(idle_log[-15:]),
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
            f"{tag} {changed} changed while idle:\n  before: "
            f"{json.dumps(before[changed].get('status'))}\n  after:  "
            f"{json.dumps(now_obj.get('status'))}\n  annotations: "
            f"{now_obj['metadata'].get('annotations')}",
            file=sys.stderr,
        )
    # Time spent inside the reconcile handlers, per part (mean of every reconcile).
    in_handler = {
        part: op.metric(f'clientpipelines_reconcile_duration_seconds_sum{{part="{part}"}}')
        / max(1.0, op.metric(f'clientpipelines_reconcile_duration_seconds_count{{part="{part}"}}'))
        for part in PARTS
    }
    rss_mb = procs.group_rss_bytes(op.proc.pid) / 2**20 if op.proc else 0.0

    print(f"{tag} deleting", file=sys.stderr, flush=True)
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
    clean_up(stack, api, namespace, [s.client_id for s in all_sources], databases)

    return {
        "mode": mode,
        "n": n,
        "drift_interval_s": sc.drift_interval,
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
        "settle_seconds": SETTLE_SECONDS,
        "settle_external_writes": settle_writes,
        "idle_seconds": sc.idle_seconds,
        "idle_part_checks": idle_checks,
        "idle_external_writes": idle_writes,
        "idle_writes_by_part": idle_writes_by_part,
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
    parser.add_argument("--n", type=int, action="append", help="CDC pipelines (repeatable)")
    parser.add_argument(
        "--full-reload", type=int, action="append", default=[], help="full-reload pipelines"
    )
    parser.add_argument("--drift-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--idle-seconds", type=float, help="default: three drift intervals")
    args = parser.parse_args()
    idle = args.idle_seconds or 3 * args.drift_interval
    scenarios = [
        Scenario(n, mode, args.drift_interval, idle)
        for mode, sizes in (
            ("cdc", args.n or ([] if args.full_reload else [1, 50])),
            ("full-reload", args.full_reload),
        )
        for n in sizes
    ]
    stack = Stack()
    stack.up(progress=False)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "cp", die_with_parent=True)
        try:
            cp.start()
            api = config.new_client_from_config(config_file=str(cp.kubeconfig))
            install_crd(api)
            for sc in scenarios:
                results.append(run_n(sc, cp, stack, api, Path(tmp) / f"op{len(results)}"))
        finally:
            cp.stop()
    header = (
        f"{'mode':>11} {'N':>5} {'ready':>6} {'p50 s':>7} {'p95 s':>7} {'raw s':>7} {'p50/raw':>8} "
        f"{'burst p50 s':>12} {'p50/burst':>10} "
        f"{'idle writes':>12} {'status writes':>14} {'RSS MB':>7} "
        f"{'idle, observed: catalog DDL':>28} {'Connect configs':>16} "
        f"{'Nessie refs':>12} {'k8s objects':>12}"
    )
    print(header)
    for r in results:
        print(
            f"{r['mode']:>11} {r['n']:>5} {r['ready']:>6} "
            f"{r['latency_p50_s']:>7} {r['latency_p95_s']:>7} "
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
