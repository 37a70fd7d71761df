"""The product end to end, as `make demo` runs it: real control plane, operator, services.

Two clients onboarded from clients/<id>/values.yaml through the client-pipeline
chart; changes in their Postgres; pipeline runs started as the CronJob starts
them and executed by the local kubelet stand-in; the published tables compared
with the sources row by row; bad data refused; deletion cleans up.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from kubernetes import client

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from devstack.controlplane import ControlPlane
from devstack.demo import apply_client, run_pipeline_once, wait_ready
from devstack.operator import (
    QUIET_SCHEDULE,
    OperatorProcess,
    condition,
    get_pipeline,
    install_crd,
)
from devstack.paths import REPO_ROOT
from devstack.procs import wait_for
from devstack.sampledata import SampleData
from devstack.stack import Stack
from devstack.wiring import lake_differences, unwire_client, wait_for_cdc
from tests.argocd_health import health
from tests.platform_state import s3_object, topic_names
from tests.receiver import Received, webhook_receiver

VALUES = REPO_ROOT / "clients" / "acme-health" / "values.yaml"
# Elementary's dbt packages as `dbt deps` lays them out (dbt Hub is unreachable
# here), beside the repository; the runner image has them installed instead.
DBT_PACKAGES = REPO_ROOT.parent / "shared" / "dbt-packages"
# The Secret the runners' platform settings come from (chart: runner.envSecret).
RUNNER_SECRET = "platform-runner"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Received]:
    with webhook_receiver() as received:
        yield received


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    platform: Stack,
    kube_api: client.ApiClient,
    webhook: Received,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    install_crd(kube_api)
    if not DBT_PACKAGES.is_dir():
        pytest.skip(f"Elementary's dbt package is expected in {DBT_PACKAGES} (shared data)")
    ep = platform.endpoints()
    # One failed run is enough to call the pipeline Degraded here (default 3). Runs
    # store Elementary's report in the reports bucket (S3 keys from RUNNER_SECRET).
    op = OperatorProcess(
        control_plane,
        platform,
        tmp_path_factory.mktemp("e2e-operator"),
        extra_env={
            "FAILED_RUNS_DEGRADED": "1",
            "NOTIFY_WEBHOOK_URL": webhook.url,
            "REPORTS_URI": f"{ep.reports}e2e",
            "REPORTS_S3_ENDPOINT": ep.s3_endpoint,
            "RUNNER_ENV_SECRET": RUNNER_SECRET,
            "RUNNER_ENV": json.dumps({"DBT_PACKAGES_DIR": str(DBT_PACKAGES)}),
        },
    )
    op.start()
    yield op
    op.stop()


def equal(stack: Stack, client_id: str) -> None:
    diffs = lake_differences(stack, client_id)
    assert all(d == 0 and s == lake for s, lake, d in diffs.values()), diffs


def last_run(api: client.ApiClient, namespace: str, client_id: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, client_id
    )
    return dict((obj.get("status") or {}).get("lastRun") or {})


# Two clients' four tables through five runs, each with Elementary: longer than the
# suite's per-test default on 2 cores.
@pytest.mark.timeout(1500)
def test_two_clients_onboard_publish_refuse_bad_data_and_clean_up(
    operator: OperatorProcess,
    control_plane: ControlPlane,
    platform: Stack,
    kube_api: client.ApiClient,
    webhook: Received,
    tmp_path: Path,
) -> None:
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    a, b = f"a{uuid.uuid4().hex[:7]}", f"b{uuid.uuid4().hex[:7]}"
    ep = platform.endpoints()
    trino = ep.trino()
    try:
        for cid in (a, b):
            apply_client(
                kube_api,
                platform,
                cid,
                rows=100,
                values_file=VALUES,
                namespace=namespace,
                deletion_policy="Delete",
                # Runs are started by hand below; see QUIET_SCHEDULE for why none on schedule.
                schedule=QUIET_SCHEDULE,
            )
        client.CoreV1Api(kube_api).create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=RUNNER_SECRET),
                string_data={
                    "AWS_ACCESS_KEY_ID": ep.s3_access_key,
                    "AWS_SECRET_ACCESS_KEY": ep.s3_secret_key,
                    "AWS_DEFAULT_REGION": ep.s3_region,
                },
            ),
        )
        for cid in (a, b):
            wait_ready(kube_api, cid, namespace, show=False)

        # First run of each: the snapshot published.
        for cid in (a, b):
            wait_for_cdc(platform, cid)
            assert run_pipeline_once(kube_api, control_plane.kubeconfig, cid, namespace) == 0
            equal(platform, cid)
        assert wait_for(
            "status.lastRun to show the run",
            lambda: last_run(kube_api, namespace, a).get("phase") == "Succeeded",
            timeout=60,
        )

        # A second batch of changes: equal again, nothing duplicated.
        SampleData(platform).apply_changes(a, count=200, seed=5)
        wait_for_cdc(platform, a)
        first_run = last_run(kube_api, namespace, a)["job"]
        assert run_pipeline_once(kube_api, control_plane.kubeconfig, a, namespace) == 0
        equal(platform, a)
        good_run = wait_for(
            "status.lastRun to show the second run",
            lambda: (
                (r := last_run(kube_api, namespace, a)).get("phase") == "Succeeded"
                and r["job"] != first_run
                and r["job"]
            ),
            timeout=60,
        )

        # The clients see neither each other's data nor objects.
        sa, sb = ClientNames(a), ClientNames(b)
        onboarded = yaml.safe_load(VALUES.read_text())["source"]["tables"]
        assert trino.query(f"show tables from {sa.cdc_catalog}.default") == [
            (sa.topic("public", t),) for t in sorted(onboarded)
        ]
        # b's published tables still equal b's source after a's changes were published.
        equal(platform, b)

        # Bad data: the run fails, lake is unchanged, the status shows the failed run.
        # An observation period of a person the client's database does not have.
        published = (
            f"select count(*), sum(observation_period_id) from lake.{sa.lake_schema}"
            ".observation_period"
        )
        before = trino.query(published)
        with psycopg.connect(SampleData(platform).source(a).dsn(), autocommit=True) as conn:
            conn.execute(
                "insert into observation_period values"
                " (700001, 999999, '2020-01-01', '2020-12-31', 32817)"
            )
        wait_for_cdc(platform, a)
        assert run_pipeline_once(kube_api, control_plane.kubeconfig, a, namespace) == 1
        assert trino.query(published) == before
        assert wait_for(
            "status.lastRun to show the failed run",
            lambda: last_run(kube_api, namespace, a).get("phase") == "Failed",
            timeout=60,
        )
        # The runner's termination message named what failed; Elementary reported
        # the failed run where status.lastRun says.
        failed_run = last_run(kube_api, namespace, a)
        # dbt's name for the test: relationships_observation_period_person_id__person_id__...
        (check,) = failed_run["failedChecks"]
        assert check.startswith("relationships_observation_period_person_id")
        report = failed_run["report"]
        assert report.startswith(f"{ep.reports}e2e/{a}/")
        html = s3_object(ep, report)
        assert html and b"elementary" in html.lower()
        # The failure is surfaced: a condition, an Event, ArgoCD's health, the last good run.
        failed_obj = get_pipeline(kube_api, namespace, a)
        assert failed_obj is not None
        runs = condition(failed_obj, "LastRunSucceeded")
        assert runs is not None
        assert (runs["status"], runs["reason"]) == ("False", "RunsFailing")
        assert failed_obj["status"]["failedRunsInARow"] == 1
        assert failed_obj["status"]["lastSuccessfulRun"]["job"] == good_run
        assert health(failed_obj)["status"] == "Degraded"
        assert wait_for(
            "a RunFailed Event naming the failed test",
            lambda: any(
                e.reason == "RunFailed"
                and e.involved_object.name == a
                and "relationships_observation_period_person_id" in (e.message or "")
                for e in client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
            ),
            timeout=30,
        )
        notified = wait_for(
            "the webhook to be told",
            lambda: [r for r in webhook if r.get("client") == a],
            timeout=30,
        )
        assert [r["event"] for r in notified] == ["RunFailed"]
        assert notified[0]["failedRunsInARow"] == 1
        assert a in notified[0]["text"]
        assert "secret-token" not in operator.log.read_text()  # the URL is never logged

        # Delete with deletionPolicy Delete: nothing outside Kubernetes is left.
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, a
        )
        wait_for(
            "the ClientPipeline to be gone",
            lambda: (
                not any(
                    i["metadata"]["name"] == a
                    for i in client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL
                    )["items"]
                )
            ),
            timeout=120,
        )
        assert KafkaConnectClient(ep.connect_url).get_config(sa.connector) is None
        catalogs = trino.catalogs()
        assert not {sa.cdc_catalog, sa.staging_catalog, sa.source_catalog} & catalogs
        assert ep.nessie().get_reference(sa.staging_branch) is None
        topics = topic_names(ep.kafka_bootstrap)
        assert not [t for t in topics if sa.owns_topic(t)]
        assert [t for t in topics if sb.owns_topic(t)]
        with psycopg.connect(ep.postgres_dsn(SampleData(platform).source(a).database)) as conn:
            assert conn.execute(
                "select count(*) from pg_replication_slots where slot_name = %s",
                (sa.replication_slot,),
            ).fetchone() == (0,)
            assert conn.execute(
                "select count(*) from pg_publication where pubname = %s", (sa.publication,)
            ).fetchone() == (0,)
        wait_for(
            "the CronJob to be garbage-collected",
            lambda: (
                not [
                    c
                    for c in client.BatchV1Api(kube_api).list_namespaced_cron_job(namespace).items
                    if c.metadata.name == sa.cronjob
                ]
            ),
            timeout=60,
        )
        # The published tables stay.
        assert trino.query(f"select count(*) from lake.{sa.lake_schema}.provider")[0][0] > 0
        # The other client is untouched.
        assert sb.staging_catalog in catalogs
    finally:
        for cid in (a, b):
            with contextlib.suppress(client.exceptions.ApiException):
                client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, cid
                )
        wait_for(
            "cleanup",
            lambda: (
                not client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                )["items"]
            ),
            timeout=120,
        )
        for cid in (a, b):
            unwire_client(platform, cid)
