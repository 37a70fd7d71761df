"""The operator against a real kube-apiserver and the real services."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.manifests import LABEL_CLIENT as LABEL
from clientpipelines.naming import ClientNames
from clientpipelines.omop import table as omop_table
from clientpipelines.operator import desired, requests
from devstack import dashboard, kubelet
from devstack.controlplane import ControlPlane
from devstack.demo import run_pipeline_once
from devstack.operator import (
    DRIFT_INTERVAL,
    OperatorProcess,
    condition,
    get_pipeline,
    pipeline_body,
    put_client_secret,
    wait_ready,
)
from devstack.procs import wait_for
from devstack.sampledata import CLINICAL_TABLES, SAMPLE_TABLES, ClientSource, SampleData
from devstack.stack import Endpoints, Stack
from devstack.wiring import lake_differences, lake_equals_source, unwire_client, wait_for_cdc
from tests.platform_state import connector_names, topic_names, topic_retention_ms


@pytest.fixture(scope="module")
def prometheus(
    operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dashboard.Prometheus]:
    """A real Prometheus scraping the operator every second, for the dashboard's panels."""
    with dashboard.running_prometheus(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{operator.metrics_port}"]
    ) as prom:
        yield prom


class Client:
    """One test client: its source database, Secret and namespace."""

    def __init__(
        self,
        api: client.ApiClient,
        stack: Stack,
        namespace: str,
        tables: tuple[str, ...] = SAMPLE_TABLES,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.id = f"c{uuid.uuid4().hex[:8]}"
        self.names = ClientNames(self.id)
        self.source: ClientSource = SampleData(stack).create(
            self.id, rows=40, seed=3, tables=tables
        )
        self.secret = f"{self.id}-db"
        put_client_secret(api, namespace, self.secret, self.source)
        self.objects = client.CustomObjectsApi(api)

    def apply(self, **kwargs: Any) -> dict[str, Any]:
        body = pipeline_body(self.id, self.source, secret=self.secret, **kwargs)
        return dict(
            self.objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
        )

    def patch(self, spec: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.id, {"spec": spec}
        )

    def delete(self) -> None:
        self.objects.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.id
        )

    def get(self) -> dict[str, Any] | None:
        return get_pipeline(self.api, self.namespace, self.id)


@pytest.fixture
def namespace(kube_api: client.ApiClient, platform: Stack) -> Iterator[str]:
    """A namespace per test; afterwards, whatever its clients left outside Kubernetes goes."""
    name = f"ns-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    yield name
    objects = client.CustomObjectsApi(kube_api)
    for item in objects.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)["items"]:
        objects.delete_namespaced_custom_object(
            GROUP, VERSION, name, PLURAL, item["metadata"]["name"]
        )
    wait_for(
        "the operator to finish deleting this test's pipelines",
        lambda: not objects.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)["items"],
        timeout=90,
    )
    for secret in client.CoreV1Api(kube_api).list_namespaced_secret(name).items:
        if secret.metadata.name.endswith("-db"):
            unwire_client(platform, secret.metadata.name.removesuffix("-db"))


@pytest.fixture
def services(endpoints: Endpoints) -> dict[str, Any]:
    return {
        "connect": KafkaConnectClient(endpoints.connect_url),
        "nessie": endpoints.nessie(),
        "trino": endpoints.trino(),
    }


def wait_for_slot(c: Client) -> dict[str, Any]:
    """status.replicationSlot once the slot exists: Debezium makes it as its task
    starts, so the reconcile that saw the connector RUNNING may have found none yet."""
    return wait_for(
        "the replication slot in status",
        lambda: (
            (slot := ((c.get() or {}).get("status") or {}).get("replicationSlot"))
            and slot.get("exists")
            and slot
        ),
        timeout=DRIFT_INTERVAL * 4,
    )


def slot_and_publication(endpoints: Endpoints, c: Client) -> tuple[bool, bool]:
    with psycopg.connect(endpoints.postgres_dsn(c.source.database)) as conn:
        slot = conn.execute(
            "select 1 from pg_replication_slots where slot_name = %s", (c.names.replication_slot,)
        ).fetchone()
        pub = conn.execute(
            "select 1 from pg_publication where pubname = %s", (c.names.publication,)
        ).fetchone()
    return slot is not None, pub is not None


def parts_exist(services: dict[str, Any], c: Client) -> dict[str, bool]:
    catalogs = services["trino"].catalogs()
    return {
        "connector": services["connect"].get_config(c.names.connector) is not None,
        "cdc_catalog": c.names.cdc_catalog in catalogs,
        "staging_catalog": c.names.staging_catalog in catalogs,
        "branch": services["nessie"].get_reference(c.names.staging_branch) is not None,
    }


def client_topics(endpoints: Endpoints, c: Client) -> list[str]:
    return [t for t in topic_names(endpoints.kafka_bootstrap) if c.names.owns_topic(t)]


def provider_events(services: dict[str, Any], c: Client) -> int:
    topic = c.names.topic("public", "provider")
    rows = services["trino"].query(f'select count(*) from {c.names.cdc_catalog}.default."{topic}"')
    return int(rows[0][0])


def events_text(api: client.ApiClient, namespace: str) -> str:
    return json.dumps(
        [e.to_dict() for e in client.CoreV1Api(api).list_namespaced_event(namespace).items],
        default=str,
    )


def test_create_wires_every_part_and_a_rerun_writes_nothing(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider", "care_site"])
    obj = wait_ready(kube_api, namespace, c.id)

    assert parts_exist(services, c) == dict.fromkeys(
        ("connector", "cdc_catalog", "staging_catalog", "branch"), True
    )
    assert slot_and_publication(endpoints, c) == (True, True)
    status = obj["status"]
    assert {x["type"]: x["status"] for x in status["conditions"]} == dict.fromkeys(
        (
            "Ready",
            "CatalogsReady",
            "ConnectorReady",
            "BranchesReady",
            "ScheduleReady",
            "ReplicationSlotHealthy",
        ),
        "True",
    )
    assert status["connector"]["state"] == "RUNNING"
    assert status["cronJob"] == c.names.cronjob

    cron = client.BatchV1Api(kube_api).read_namespaced_cron_job(c.names.cronjob, namespace)
    assert cron.spec.concurrency_policy == "Forbid"
    assert cron.metadata.owner_references[0].uid == obj["metadata"]["uid"]
    container = cron.spec.job_template.spec.template.spec.containers[0]
    # The run contract travels as environment (the runner reads it back).
    assert {e.name: e.value for e in container.env}["CLIENT_ID"] == c.id

    # The client's password appears in no Kubernetes object the operator writes, and
    # not in Trino's query history, where every CREATE CATALOG is kept (CDC catalogs
    # hold no database login; full-reload's does: README).
    password = c.source.password
    history = services["trino"].query("select query from system.runtime.queries")
    assert any("create catalog" in str(q).lower() for (q,) in history)
    # Kafka Connect stores (and its REST API returns) a reference to the login, a
    # file only the operator and Connect read.
    connector_config = services["connect"].get_config(c.names.connector)
    login = Path(connector_config["database.password"].split(":", 2)[1])
    assert login.stat().st_mode & 0o777 == 0o640 and password in login.read_text()
    for text in (
        json.dumps(connector_config),
        json.dumps(obj),
        json.dumps(client.ApiClient().sanitize_for_serialization(cron)),
        events_text(kube_api, namespace),
        operator.log.read_text(),
        json.dumps(history, default=str),
    ):
        assert password not in text

    # Idle: several drift intervals re-check every system and write nothing. First the
    # status settles: Debezium holds the slot a moment after the connector runs, and
    # status.replicationSlot.active says so then.
    wait_for(
        "status to show the slot in use",
        lambda: (c.get() or {}).get("status", {}).get("replicationSlot", {}).get("active"),
        timeout=30,
    )
    version = c.get()["metadata"]["resourceVersion"]  # type: ignore[index]
    cron_version = cron.metadata.resource_version
    writes = operator.metric("clientpipelines_writes_total")
    reconciles = operator.metric("clientpipelines_reconciles_total")
    wait_for(
        "two drift re-checks",
        lambda: operator.metric("clientpipelines_reconciles_total") >= reconciles + 8,
        timeout=DRIFT_INTERVAL * 4,
    )
    assert operator.metric("clientpipelines_writes_total") == writes
    assert c.get()["metadata"]["resourceVersion"] == version  # type: ignore[index]
    assert (
        client.BatchV1Api(kube_api)
        .read_namespaced_cron_job(c.names.cronjob, namespace)
        .metadata.resource_version
        == cron_version
    )
    c.delete()


def test_a_full_reload_login_reaches_trino_as_a_file_never_as_statement_text(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    """Trino keeps every statement's text (system.runtime.queries); the full-reload
    catalog's database login goes to a file Trino reads, 0640, gone with the client."""
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"], mode="full-reload")
    wait_ready(kube_api, namespace, c.id)
    login = Path(endpoints.trino_credentials_dir) / f"{c.names.source_catalog}.properties"
    assert login.stat().st_mode & 0o777 == 0o640
    assert c.source.password in login.read_text()
    trino = services["trino"]
    ((rows,),) = trino.query(f"select count(*) from {c.names.source_catalog}.public.provider")
    assert rows == 40  # Trino logged in with it
    history = json.dumps(trino.query("select query from system.runtime.queries"), default=str)
    assert c.names.source_catalog in history and c.source.password not in history

    # A drift check of a full-reload pipeline writes nothing either: the CDC parts it
    # does not use are removed only if something of them is there.
    writes = operator.metric("clientpipelines_writes_total")
    reconciles = operator.metric("clientpipelines_reconciles_total")
    core = client.CoreV1Api(kube_api)

    def repairs() -> list[str]:  # a drift check's write shows as a Repaired Event
        items = core.list_namespaced_event(namespace).items
        return [f"{e.message} x{e.count}" for e in items if e.reason == "Repaired"]

    repaired = repairs()
    # The counter is the operator's, for every pipeline: this one's timer has fired
    # at least once when a drift interval has passed too.
    checked_after = time.monotonic() + DRIFT_INTERVAL * 1.5
    wait_for(
        "a drift re-check",
        lambda: (
            operator.metric("clientpipelines_reconciles_total") >= reconciles + 4
            and time.monotonic() >= checked_after
        ),
        timeout=DRIFT_INTERVAL * 4,
    )
    assert operator.metric("clientpipelines_writes_total") == writes
    assert repairs() == repaired
    c.delete()
    wait_for("the pipeline to go", lambda: c.get() is None, timeout=90)
    assert not login.exists()
    assert c.names.source_catalog not in trino.catalogs()


def test_update_changes_connector_and_cronjob_in_place(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["care_site"])
    wait_ready(kube_api, namespace, c.id)
    cron_uid = (
        client.BatchV1Api(kube_api)
        .read_namespaced_cron_job(c.names.cronjob, namespace)
        .metadata.uid
    )

    c.patch(
        {
            "source": {"postgres": {"tables": ["care_site", "provider"]}},
            "transform": {"schedule": "0 * * * *"},
        }
    )
    wait_ready(kube_api, namespace, c.id)

    config = services["connect"].get_config(c.names.connector)
    assert config["table.include.list"] == "public.care_site,public.provider"
    connectors = [n for n in connector_names(services["connect"]) if n.startswith(c.id)]
    assert connectors == [c.names.connector]
    cron = client.BatchV1Api(kube_api).read_namespaced_cron_job(c.names.cronjob, namespace)
    assert (cron.metadata.uid, cron.spec.schedule) == (cron_uid, "0 * * * *")
    topics = services["trino"].query(f"show tables from {c.names.cdc_catalog}.default")
    assert sorted(t for (t,) in topics) == [
        c.names.topic("public", "care_site"),
        c.names.topic("public", "provider"),
    ]
    c.delete()


def _deployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(api.sanitize_for_serialization(found))


def test_continuous_mode_runs_one_runner_that_publishes_and_stops_after_its_batch(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, endpoints: Endpoints
) -> None:
    """transform.mode continuous, as shipped: the operator's Deployment, its Pod (made
    by the real deployment and replicaset controllers) run by the local kubelet, the
    runner publishing micro-batches; suspended, the Pod goes and the runner stops
    after its batch, releasing the client's lock; back to the schedule, the
    Deployment goes and the CronJob runs again."""
    stack = Stack()
    c = Client(kube_api, stack, namespace)
    c.apply(tables=["provider", "care_site"])
    wait_ready(kube_api, namespace, c.id)
    batch = client.BatchV1Api(kube_api)
    assert _deployment(kube_api, namespace, c.names.continuous_runner) is None

    wait_for_cdc(stack, c.id)
    c.patch({"transform": {"mode": "continuous", "intervalSeconds": 2}})
    # Not Ready until its runner is up: the Deployment's own status says so. Nothing
    # runs its Pod yet, so the reason is RunnerStarting until the deployment controller
    # has reported, then RunnerUnavailable: a loaded machine can miss the first.
    waiting = wait_for(
        "ScheduleReady to wait for the runner",
        lambda: (
            (found := condition(c.get(), "ScheduleReady"))
            and found["reason"] in ("RunnerStarting", "RunnerUnavailable")
            and found
        ),
        timeout=60,
    )
    assert waiting["status"] == "False", waiting
    assert c.names.continuous_runner in waiting["message"], waiting
    outcome: list[int] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            kubelet.run_pod(
                kube_api,
                namespace,
                f"{LABEL}={c.id},{desired.COMPONENT_LABEL}={desired.CONTINUOUS_COMPONENT}",
                f"Deployment {c.names.continuous_runner}",
                timeout=900,
            )
        ),
        daemon=True,
    )
    runner.start()
    try:
        obj = wait_ready(kube_api, namespace, c.id)
        schedule = condition(obj, "ScheduleReady")
        assert schedule is not None and schedule["reason"] == "Continuous", schedule
        assert obj["status"]["continuousRunner"] == c.names.continuous_runner
        deployment = _deployment(kube_api, namespace, c.names.continuous_runner)
        assert deployment is not None
        assert deployment["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (
            1,
            "Recreate",
        )
        assert deployment["status"]["availableReplicas"] == 1
        # The schedule is suspended: requested runs only.
        assert batch.read_namespaced_cron_job(c.names.cronjob, namespace).spec.suspend is True

        wait_for("the snapshot published", lambda: lake_equals_source(stack, c.id), timeout=300)
        SampleData(stack).apply_changes(c.id, count=20, seed=11)
        wait_for("the changes published", lambda: lake_equals_source(stack, c.id), timeout=300)
        assert not outcome, "the runner exited on its own"

        # Suspended: no runner. Its Pod is deleted; the runner gets SIGTERM, finishes
        # the batch in progress and exits cleanly.
        c.patch({"transform": {"suspend": True}})
        wait_ready(kube_api, namespace, c.id)
        deployment = _deployment(kube_api, namespace, c.names.continuous_runner)
        assert deployment is not None and deployment["spec"]["replicas"] == 0
        runner.join(timeout=300)
        assert outcome == [0]
    finally:
        c.patch({"transform": {"suspend": True}})
        runner.join(timeout=300)
    assert endpoints.nessie().get_reference(c.names.run_lock_branch) is None

    # Back to the schedule: the runner's Deployment goes, the CronJob runs again.
    c.patch({"transform": {"mode": "scheduled", "suspend": False}})
    obj = wait_ready(kube_api, namespace, c.id)
    assert (condition(obj, "ScheduleReady") or {}).get("reason") == "Scheduled"
    # Ready only once the old runner is gone; then the schedule runs again.
    assert _deployment(kube_api, namespace, c.names.continuous_runner) is None
    assert obj["status"].get("continuousRunner") is None
    assert batch.read_namespaced_cron_job(c.names.cronjob, namespace).spec.suspend is False
    c.delete()


def _snapshot_reads(trino: TrinoClient, c: Client, table: str) -> int:
    """Snapshot events (op r) in a table's change topic."""
    topic = f'{c.names.cdc_catalog}.default."{c.names.topic("public", table)}"'
    query = f"select count(*) from {topic} where json_extract_scalar(_message, '$.op') = 'r'"
    return int(trino.query(query)[0][0])


def _lake_rows(trino: TrinoClient, c: Client, table: str) -> list[tuple[Any, ...]]:
    key = ", ".join(omop_table(table).key)
    return trino.query(f"select * from lake.{c.names.lake_schema}.{table} order by {key}")


def assert_equal(stack: Stack, client_id: str, tables: list[str]) -> None:
    """The published tables equal the source, row by row."""
    diffs = lake_differences(stack, client_id, tables)
    assert all(d == 0 and s == lake for s, lake, d in diffs.values()), diffs


# Three runs of 16-18 tables and two live changes of the table list, each with its
# connector restart.
@pytest.mark.timeout(1200)
def test_every_clinical_table_live_added_backfilled_removed_kept(
    operator: OperatorProcess,
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
) -> None:
    """The product's acceptance of many tables: a client with 16 OMOP CDM tables
    through the real operator and runs; two tables added live (one keyless: death),
    backfilled and published; one removed, its published rows kept. After every run,
    every table equals the source row by row (inserts, updates with re-keyed primary
    keys, deletes in every table; TOASTed notes updated with and without their text)."""
    stack, trino = Stack(), services["trino"]
    added = ["death", "specimen"]
    first = [t for t in CLINICAL_TABLES if t not in added]
    assert len(first) >= 15
    # The source has all 18 tables; the pipeline starts with 16.
    c = Client(kube_api, stack, namespace, tables=CLINICAL_TABLES)
    c.apply(tables=first)
    wait_ready(kube_api, namespace, c.id)
    sample = SampleData(stack)
    sample.apply_changes(c.id, count=300, seed=20, batch=50)
    # Notes long enough for Postgres to TOAST them (stored out of line, compressed
    # poorly): an update that leaves them unchanged reaches Debezium without them.
    with psycopg.connect(c.source.dsn(), autocommit=True) as conn:
        conn.execute(
            "update note set note_text = %s where note_id <= 5",
            (" ".join(uuid.uuid4().hex for _ in range(400)),),
        )
    wait_for_cdc(stack, c.id, tables=first)
    assert run_pipeline_once(kube_api, control_plane.kubeconfig, c.id, namespace) == 0
    assert_equal(stack, c.id, first)
    reads_before = {t: _snapshot_reads(trino, c, t) for t in first}

    # Add two tables: captured from now on, their existing rows backfilled by an
    # incremental snapshot; changes meanwhile in every table.
    c.patch({"source": {"postgres": {"tables": first + added}}})
    wait_for(
        "the operator to ask for the backfill",
        lambda: (
            f"asked {c.names.connector} to backfill public.death, public.specimen"
            in events_text(kube_api, namespace)
        ),
        timeout=90,
    )
    wait_ready(kube_api, namespace, c.id)
    changes = sample.apply_changes(c.id, count=300, seed=21, batch=50)
    touched = sample.last_changes
    assert touched is not None and set(added) <= touched.touched, changes
    assert changes["insert"] and changes["update"] and changes["delete"] and touched.rekeyed
    with psycopg.connect(c.source.dsn(), autocommit=True) as conn:
        assert conn.execute(
            "update note set note_title = 'only the title' where length(note_text) > 10000"
        ).rowcount
    wait_for_cdc(stack, c.id, tables=first + added)
    assert run_pipeline_once(kube_api, control_plane.kubeconfig, c.id, namespace) == 0
    assert_equal(stack, c.id, first + added)
    # The other tables were not snapshotted again.
    assert {t: _snapshot_reads(trino, c, t) for t in first} == reads_before
    status = (c.get() or {})["status"]["connector"]
    assert (status["tables"], status["backfillPending"]) == (sorted(first + added), [])

    # Remove one: its capture stops, its published table stays as it was.
    removed = "condition_era"
    kept = _lake_rows(trino, c, removed)
    remaining = [t for t in first + added if t != removed]
    c.patch({"source": {"postgres": {"tables": remaining}}})
    wait_for(
        "the Event about the removed table",
        lambda: f"stopped capturing public.{removed}: lake." in events_text(kube_api, namespace),
        timeout=90,
    )
    wait_ready(kube_api, namespace, c.id)
    config = services["connect"].get_config(c.names.connector)
    assert removed not in config["table.include.list"]
    with psycopg.connect(c.source.dsn(), autocommit=True) as conn:
        changed = conn.execute(
            f"update {removed} set condition_occurrence_count = condition_occurrence_count + 1"
        ).rowcount
    assert changed
    sample.apply_changes(c.id, count=100, seed=22, batch=50)
    wait_for_cdc(stack, c.id, tables=remaining)
    assert run_pipeline_once(kube_api, control_plane.kubeconfig, c.id, namespace) == 0
    assert_equal(stack, c.id, remaining)
    assert _lake_rows(trino, c, removed) == kept
    c.delete()


def test_drift_is_repaired(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"])
    wait_ready(kube_api, namespace, c.id)

    services["connect"].delete(c.names.connector)
    services["trino"].drop_catalog(c.names.staging_catalog)
    branch = services["nessie"].get_reference(c.names.staging_branch)
    services["nessie"].delete_branch(branch)

    wait_for(
        "the drift timer to repair every part",
        lambda: all(parts_exist(services, c).values()),
        timeout=DRIFT_INTERVAL * 6,
    )
    wait_ready(kube_api, namespace, c.id)
    events = events_text(kube_api, namespace)
    assert "Repaired" in events
    for thing in (c.names.connector, c.names.staging_catalog, c.names.staging_branch):
        assert thing in events
    c.delete()


def test_delete_with_delete_policy_removes_everything_outside_kubernetes(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider", "care_site"], policy="Delete")
    wait_ready(kube_api, namespace, c.id)
    assert slot_and_publication(endpoints, c) == (True, True)
    wait_for("the snapshot to reach Kafka", lambda: provider_events(services, c) == 40)
    topics = client_topics(endpoints, c)
    # Two tables', the heartbeat's and the signal topic (the operator's requests).
    assert sorted(topics) == sorted(
        [
            c.names.topic("public", "provider"),
            c.names.topic("public", "care_site"),
            c.names.heartbeat_topic,
            c.names.signal_topic,
        ]
    )
    # Change topics keep data for ever, heartbeats a day, signals a week.
    special = {c.names.heartbeat_topic: "86400000", c.names.signal_topic: "604800000"}
    assert topic_retention_ms(endpoints.kafka_bootstrap, topics) == {
        t: special.get(t, "-1") for t in topics
    }

    c.delete()
    wait_for("the ClientPipeline to be gone (finalizer done)", lambda: c.get() is None, timeout=120)
    assert parts_exist(services, c) == dict.fromkeys(
        ("connector", "cdc_catalog", "staging_catalog", "branch"), False
    )
    assert slot_and_publication(endpoints, c) == (False, False)
    assert client_topics(endpoints, c) == []
    wait_for(
        "the garbage collector to delete the CronJob",
        lambda: not client.BatchV1Api(kube_api).list_namespaced_cron_job(namespace).items,
        timeout=60,
    )

    # Onboarding the same client again starts from scratch: Connect forgot the old
    # offsets, so Debezium snapshots the tables again instead of resuming past them.
    c.apply(tables=["provider", "care_site"], policy="Delete")
    wait_ready(kube_api, namespace, c.id)
    wait_for("a fresh snapshot in Kafka", lambda: provider_events(services, c) == 40, timeout=60)


def wait_refused(c: Client, reason: str) -> dict[str, Any]:
    def refused() -> dict[str, Any] | None:
        ready = condition(c.get(), "Ready")
        return ready if ready and ready["reason"] == reason else None

    result: dict[str, Any] = wait_for(f"{c.id} refused with {reason}", refused, timeout=60)
    return result


def assert_nothing_made(services: dict[str, Any], endpoints: Endpoints, c: Client) -> None:
    assert parts_exist(services, c) == dict.fromkeys(
        ("connector", "cdc_catalog", "staging_catalog", "branch"), False
    )
    assert slot_and_publication(endpoints, c) == (False, False)
    assert client_topics(endpoints, c) == []
    assert not client.BatchV1Api(c.api).list_namespaced_cron_job(c.namespace).items


def test_a_foreign_image_is_refused_and_nothing_is_made(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"], image="evil.example/runner:1")
    ready = wait_refused(c, "ImageNotAllowed")
    assert "evil.example/runner:1" in ready["message"]
    schedule = condition(c.get(), "ScheduleReady")
    assert schedule is not None
    assert schedule["reason"] == "ImageNotAllowed"
    assert_nothing_made(services, endpoints, c)


def test_a_secret_of_another_client_or_with_unsafe_values_is_refused(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    stack = Stack()
    owner, thief = Client(kube_api, stack, namespace), Client(kube_api, stack, namespace)
    thief.secret = owner.secret  # a Secret labelled for another client
    thief.apply(tables=["provider"])
    ready = wait_refused(thief, "SecretNotAllowed")
    assert f"labelled for {owner.id}" in ready["message"]
    assert_nothing_made(services, endpoints, thief)
    with psycopg.connect(endpoints.postgres_dsn()) as conn:  # no slot anywhere in either
        slots = conn.execute(
            "select slot_name from pg_replication_slots where database in (%s, %s)",
            (owner.source.database, thief.source.database),
        ).fetchall()
    assert slots == []

    # A credential that Trino or Kafka Connect would expand reaches neither.
    sneaky = Client(kube_api, stack, namespace)
    leak = "${ENV:LAKE_S3_SECRET_KEY}"
    put_client_secret(
        kube_api, namespace, sneaky.secret, dataclasses.replace(sneaky.source, username=leak)
    )
    sneaky.apply(tables=["provider"], mode="full-reload")
    ready = wait_refused(sneaky, "InvalidCredentials")
    assert "key username contains '${'" in ready["message"]
    assert leak not in json.dumps(sneaky.get())
    assert_nothing_made(services, endpoints, sneaky)
    assert sneaky.names.source_catalog not in services["trino"].catalogs()


def test_a_taken_client_id_is_refused_and_deleting_it_touches_nothing(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    first = Client(kube_api, Stack(), namespace)
    first.apply(tables=["provider"], policy="Delete")
    wait_ready(kube_api, namespace, first.id)

    other = f"ns-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        second = Client.__new__(Client)  # the same client id, in another namespace
        second.__dict__.update({**first.__dict__, "namespace": other})
        put_client_secret(kube_api, other, second.secret, second.source)
        second.apply(tables=["provider", "care_site"], policy="Delete")
        ready = wait_refused(second, "ClientIdTaken")
        assert f"{namespace}/{first.id}" in ready["message"]
        second.delete()
        wait_for("the second pipeline to be gone", lambda: second.get() is None, timeout=60)
        # Nothing of the first one was touched by the second's life and deletion.
        assert parts_exist(services, first) == dict.fromkeys(
            ("connector", "cdc_catalog", "staging_catalog", "branch"), True
        )
        assert slot_and_publication(endpoints, first) == (True, True)
        assert condition(first.get(), "Ready")["status"] == "True"  # type: ignore[index]
        assert client.BatchV1Api(kube_api).list_namespaced_cron_job(namespace).items
        assert not client.BatchV1Api(kube_api).list_namespaced_cron_job(other).items
    finally:
        core.delete_namespace(other)


def test_a_paused_connector_lets_the_slot_hold_wal_until_its_condition_turns_then_heals(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    endpoints: Endpoints,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"])
    # This client's limit is small, so a test can fill it; heartbeats every second
    # let a resumed connector confirm a position past the WAL its neighbours wrote.
    c.patch({"ingestion": {"cdc": {"maxRetainedWal": "16Mi", "heartbeatIntervalMs": 1000}}})
    wait_ready(kube_api, namespace, c.id)
    client_label = f'client="{c.id}"'

    def slot_healthy() -> bool | None:
        cond = condition(c.get(), "ReplicationSlotHealthy")
        return None if cond is None else cond["status"] == "True"

    before = wait_for_slot(c)
    assert slot_healthy() is True
    assert before["retainedWalLimit"] == "16 MiB"

    c.patch({"transform": {"suspend": True}})
    wait_for(
        "the connector to pause",
        lambda: (c.get() or {}).get("status", {}).get("connector", {}).get("state") == "PAUSED",
        timeout=60,
    )
    # ~40 MiB of WAL on the client's server; the paused connector confirms none of it.
    with psycopg.connect(endpoints.postgres_dsn(c.source.database), autocommit=True) as conn:
        conn.execute(
            "create table wal_filler as select g, md5(g::text) as h"
            " from generate_series(1, 400000) as g"
        )
        conn.execute("drop table wal_filler")

    over = wait_for(
        "ReplicationSlotHealthy=False",
        lambda: (
            (cond := condition(c.get(), "ReplicationSlotHealthy"))
            and cond["status"] == "False"
            and cond
        ),
        timeout=DRIFT_INTERVAL * 4,
    )
    assert over["reason"] == "RetainedWalOverLimit"
    assert "over the limit of 16 MiB" in over["message"]
    slot = c.get()["status"]["replicationSlot"]  # type: ignore[index]
    assert slot["retainedWalBytes"] >= 16 << 20
    assert slot["retainedWal"].endswith("MiB")
    retained = operator.metric("clientpipelines_replication_slot_retained_wal_bytes", client_label)
    assert retained >= 16 << 20
    assert (
        operator.metric(
            "clientpipelines_condition", client_label, 'condition="ReplicationSlotHealthy"'
        )
        == 0
    )
    # Said once, as a Warning Event naming the slot.
    assert c.names.replication_slot in events_text(kube_api, namespace)
    # Ready still says the parts match the spec; the slot is a separate alarm.
    assert condition(c.get(), "Ready")["status"] == "True"  # type: ignore[index]

    c.patch({"transform": {"suspend": False}})

    def drained() -> bool:
        # Changes on a captured table after the filler: the resumed connector confirms
        # positions past it. Postgres moves restart_lsn only to a candidate set after
        # an earlier confirmation, so it takes more than one change to release it all.
        with psycopg.connect(endpoints.postgres_dsn(c.source.database), autocommit=True) as conn:
            conn.execute(
                "update provider set provider_name = provider_name"
                " where provider_id = (select min(provider_id) from provider)"
            )
        return slot_healthy() is True

    wait_for("the slot to drain", drained, timeout=DRIFT_INTERVAL * 10, interval=5)
    assert (
        operator.metric("clientpipelines_replication_slot_retained_wal_bytes", client_label)
        < 16 << 20
    )
    c.delete()


def kubectl_cpl_argv(control_plane: ControlPlane, namespace: str, *args: str) -> list[str]:
    """The installed plugin's command line, as `kubectl cpl` runs it."""
    plugin = Path(sys.executable).with_name("kubectl-cpl")
    return [str(plugin), "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, *args]


def kubectl_cpl(
    control_plane: ControlPlane, namespace: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kubectl_cpl_argv(control_plane, namespace, *args),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kubectl_cpl_and_the_dashboard_on_the_real_stack(
    operator: OperatorProcess,
    prometheus: dashboard.Prometheus,
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    namespace: str,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    """kubectl cpl runs, suspends, resumes, restarts and reports; meanwhile a real
    Prometheus scrapes the operator, and every dashboard panel has data."""
    started = time.time()
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider", "care_site"])
    wait_ready(kube_api, namespace, c.id)

    wait_for_slot(c)
    status = kubectl_cpl(control_plane, namespace, "status", c.id)
    assert status.returncode == 0, status.stderr
    assert f"connector: {c.names.connector} RUNNING" in status.stdout
    assert f"replication slot: {c.names.replication_slot} holds" in status.stdout
    assert "last run: none yet" in status.stdout

    # run: the plugin asks by annotation, the operator starts a Job from the CronJob,
    # the local kubelet runs it, and the plugin follows it to its end.
    run = subprocess.Popen(
        kubectl_cpl_argv(control_plane, namespace, "run", c.id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    batch = client.BatchV1Api(kube_api)
    job = wait_for(
        "the operator to start the requested run",
        lambda: next(
            iter(batch.list_namespaced_job(namespace, label_selector=f"{LABEL}={c.id}").items),
            None,
        ),
        timeout=60,
    )
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.owner_references[0].kind == "CronJob"
    assert kubelet.run_job(kube_api, namespace, job.metadata.name) == 0
    out, err = run.communicate(timeout=180)
    assert run.returncode == 0, out + err
    assert f"Job {job.metadata.name} Succeeded" in out
    # The run's output, followed through the API server's pods/log (the local
    # kubelet serves it like a kubelet does).
    assert f"[1/7] reset {c.names.staging_branch} to main" in out
    assert requests.RUN_NOW not in (c.get()["metadata"].get("annotations") or {})  # type: ignore[index]

    wait_for(
        "status.lastRun",
        lambda: (
            ((c.get() or {}).get("status", {}).get("lastRun") or {}).get("phase") == "Succeeded"
        ),
        timeout=30,
    )
    trino = f"{endpoints.trino_host}:{endpoints.trino_port}"
    status = kubectl_cpl(
        control_plane,
        namespace,
        "status",
        c.id,
        "--trino",
        trino,
        env=endpoints.trino_login().to_env(),
    )
    assert f"last run: {job.metadata.name} Succeeded" in status.stdout
    with psycopg.connect(endpoints.postgres_dsn(c.source.database)) as conn:
        for table in ("provider", "care_site"):
            (count,) = conn.execute(f"select count(*) from {table}").fetchone()  # type: ignore[misc]
            assert f"lake.{c.names.lake_schema}.{table}: {count} rows" in status.stdout

    assert kubectl_cpl(control_plane, namespace, "suspend", c.id).returncode == 0
    wait_for(
        "the connector to pause",
        lambda: (c.get() or {}).get("status", {}).get("connector", {}).get("state") == "PAUSED",
        timeout=60,
    )
    assert kubectl_cpl(control_plane, namespace, "resume", c.id).returncode == 0
    wait_for(
        "the connector to run again",
        lambda: (c.get() or {}).get("status", {}).get("connector", {}).get("state") == "RUNNING",
        timeout=60,
    )

    assert kubectl_cpl(control_plane, namespace, "restart-connector", c.id).returncode == 0
    wait_for(
        "the ConnectorRestarted Event",
        lambda: "ConnectorRestarted" in events_text(kube_api, namespace),
        timeout=60,
    )
    assert requests.RESTART_CONNECTOR not in (c.get()["metadata"].get("annotations") or {})  # type: ignore[index]
    wait_ready(kube_api, namespace, c.id)

    logs = kubectl_cpl(control_plane, namespace, "logs", c.id)
    assert logs.returncode == 0, logs.stderr
    assert f"[1/7] reset {c.names.staging_branch} to main" in logs.stdout
    assert "summary: published" in logs.stdout

    missing = kubectl_cpl(control_plane, namespace, "status", "nobody")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"error: no ClientPipeline nobody in namespace {namespace}",
    )

    # The dashboard: every panel's queries answer from the real metrics of this run.
    wait_for(
        "Prometheus to scrape the run's gauges",
        lambda: prometheus.query(f'clientpipelines_last_run_changed_keys{{client="{c.id}"}}'),
        timeout=30,
    )
    picture = tmp_path / "dashboard.svg"
    data = dashboard.snapshot(prometheus, c.id, started, picture)
    board = dashboard.panels(dashboard.load(), c.id)
    empty = [p.title for p in board if p.queries and not data[p.title]]
    assert not empty, f"panels without data: {empty}"
    assert all(p.title.replace("'", "&#x27;") in picture.read_text() for p in board)
    if out := os.environ.get("CLIENTPIPELINES_DASHBOARD_OUT"):
        shutil.copy(picture, out)  # the README's picture comes from this test
    c.delete()


def test_a_table_postgres_could_not_publish_is_refused_before_the_connector_exists(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    """death has no primary key: published without REPLICA IDENTITY FULL, Postgres would
    refuse the client's own UPDATEs and DELETEs on it. Nothing is made until it is fixed."""
    c = Client(kube_api, Stack(), namespace, tables=("person", "death"))
    dsn = endpoints.postgres_dsn(c.source.database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("alter table death replica identity default")
    c.apply(tables=["person", "death"])

    def refused() -> dict[str, Any] | None:
        cond = condition(c.get(), "ConnectorReady")
        return cond if cond and cond["reason"] == "SourceNotReady" else None

    cond = wait_for("ConnectorReady=False SourceNotReady", refused, timeout=60)
    assert "public.death has no primary key" in cond["message"]
    assert "ALTER TABLE public.death REPLICA IDENTITY FULL" in cond["message"]
    assert services["connect"].get_config(c.names.connector) is None
    assert slot_and_publication(endpoints, c) == (False, False)
    with psycopg.connect(dsn, autocommit=True) as conn:  # the client's writes still work
        conn.execute("delete from death where person_id = (select min(person_id) from death)")
        conn.execute("alter table death replica identity full")
    wait_ready(kube_api, namespace, c.id, timeout=180)
    assert slot_and_publication(endpoints, c) == (True, True)
    c.delete()


def test_delete_with_retain_policy_keeps_everything(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    endpoints: Endpoints,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"], policy="Retain")
    wait_ready(kube_api, namespace, c.id)
    c.delete()
    wait_for("the ClientPipeline to be gone", lambda: c.get() is None, timeout=60)
    assert all(parts_exist(services, c).values())
    assert slot_and_publication(endpoints, c) == (True, True)
    assert "Retained" in events_text(kube_api, namespace)
    # The data stays; the access goes: the client's runner has no grant left in Trino.
    rules = Path(endpoints.trino_rules_file).read_text().replace("\\", "")
    assert c.names.runner_service_account not in rules
    assert "withdrew the Trino grants" in events_text(kube_api, namespace)
    # Clean up by hand what Retain kept.
    services["connect"].delete(c.names.connector)
    for catalog in (c.names.cdc_catalog, c.names.staging_catalog):
        services["trino"].drop_catalog(catalog)


OUTAGES = [
    ("connect", "ConnectorReady", "KafkaConnectUnavailable"),
    ("trino", "CatalogsReady", "TrinoUnavailable"),
    ("nessie", "BranchesReady", "NessieUnavailable"),
]


@pytest.mark.parametrize(("service", "part", "reason"), OUTAGES, ids=[o[0] for o in OUTAGES])
def test_a_stopped_service_turns_its_condition_false_then_heals(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    platform: Stack,
    service: str,
    part: str,
    reason: str,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    c.apply(tables=["provider"])
    wait_ready(kube_api, namespace, c.id)
    platform.stop_service(service)
    try:

        def part_down() -> dict[str, Any] | None:
            cond = condition(c.get(), part)
            return cond if cond and cond["status"] == "False" else None

        cond = wait_for(f"{part}=False", part_down, timeout=DRIFT_INTERVAL * 4)
        assert cond["reason"] == reason
        ready = condition(c.get(), "Ready")
        assert ready is not None
        assert ready["status"] == "False"
        # The Kubernetes side is unaffected by the outage.
        assert condition(c.get(), "ScheduleReady")["status"] == "True"  # type: ignore[index]
    finally:
        platform.up(progress=False)
    wait_ready(kube_api, namespace, c.id, timeout=180)
    assert [n for n in connector_names(services["connect"]) if n.startswith(c.id)] == [
        c.names.connector
    ]
    assert all(parts_exist(services, c).values())
    c.delete()


def test_operator_killed_mid_reconcile_converges_after_restart(
    operator: OperatorProcess,
    control_plane: ControlPlane,
    platform: Stack,
    kube_api: client.ApiClient,
    namespace: str,
    services: dict[str, Any],
    tmp_path: Path,
) -> None:
    c = Client(kube_api, Stack(), namespace)
    operator.kill()
    try:
        c.apply(tables=["provider", "care_site"])
        second = OperatorProcess(control_plane, platform, tmp_path)
        second.start()
        # Kill it as soon as it has started writing, then start a third one.
        wait_for(
            "the first writes",
            lambda: any(parts_exist(services, c).values()),
            timeout=60,
            interval=0.1,
        )
        second.kill()
    finally:
        operator.start()
    wait_ready(kube_api, namespace, c.id)
    assert all(parts_exist(services, c).values())
    assert [n for n in connector_names(services["connect"]) if n.startswith(c.id)] == [
        c.names.connector
    ]
    crons = client.BatchV1Api(kube_api).list_namespaced_cron_job(namespace).items
    assert [x.metadata.name for x in crons] == [c.names.cronjob]
    c.delete()


def _pg(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["source"]["postgres"]  # type: ignore[no-any-return]


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "a minute out of range",
        lambda b: b["spec"]["transform"].update(schedule="61 * * * *"),
        "spec.transform.schedule",
    ),
    (
        "every cron field out of range",
        lambda b: b["spec"]["transform"].update(schedule="99 99 99 99 99"),
        "spec.transform.schedule",
    ),
    (
        "tables as a string",
        lambda b: _pg(b).update(tables="provider"),
        "spec.source.postgres.tables",
    ),
    (
        "a bad cron",
        lambda b: b["spec"]["transform"].update(schedule="every five minutes"),
        "spec.transform.schedule",
    ),
    (
        "an inline password",
        lambda b: _pg(b).update(password="hunter2"),
        "spec.source.postgres.password",
    ),
    ("an over-long name", lambda b: b["metadata"].update(name="a" * 44), "metadata.name"),
    (
        "a name whose schema is another client's Elementary schema",
        lambda b: b["metadata"].update(name="acme-elementary"),
        "metadata.name",
    ),
    (
        "an unknown mode",
        lambda b: b["spec"]["ingestion"].update(mode="batch"),
        "spec.ingestion.mode",
    ),
    ("a port out of range", lambda b: _pg(b).update(port=70000), "spec.source.postgres.port"),
    (
        "continuous mode without CDC",
        lambda b: b["spec"].update(
            ingestion={"mode": "full-reload"},
            transform={**b["spec"]["transform"], "mode": "continuous"},
        ),
        "spec.transform.mode",
    ),
    (
        "an interval of zero",
        lambda b: b["spec"]["transform"].update(mode="continuous", intervalSeconds=0),
        "spec.transform.intervalSeconds",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resources_are_refused_naming_the_field(
    crd: None,
    kube_api: client.ApiClient,
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    source = ClientSource("x", "db.example", 5432, "omop", "public", "u", "p")
    body = pipeline_body("valid-name", source, secret="s", tables=["provider"])
    mutate(body)
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, body
        )
    assert refused.value.status == 422, case
    assert field in refused.value.body
    assert "hunter2" not in refused.value.body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"database": "other"}, "spec.source.postgres.database is immutable"),
        ({"host": "db2.example"}, "spec.source.postgres.host and port are immutable"),
        ({"port": 5433}, "spec.source.postgres.host and port are immutable"),
    ],
)
def test_where_the_slot_lives_is_immutable(
    crd: None, kube_api: client.ApiClient, change: dict[str, Any], message: str
) -> None:
    source = ClientSource("x", "db.example", 5432, "omop", "public", "u", "p")
    objects = client.CustomObjectsApi(kube_api)
    name = f"imm-{uuid.uuid4().hex[:6]}"
    # Delete: an operator running meanwhile may have made its catalogs and branch.
    body = pipeline_body(name, source, secret="s", tables=["provider"], policy="Delete")
    objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    try:
        with pytest.raises(ApiException) as refused:
            objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                "default",
                PLURAL,
                name,
                {"spec": {"source": {"postgres": change}}},
            )
        assert refused.value.status == 422
        assert message in refused.value.body
    finally:
        objects.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
        wait_for(
            f"{name} to be gone",
            lambda: get_pipeline(kube_api, "default", name) is None,
            timeout=60,
        )
