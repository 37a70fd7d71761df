from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import pytest

from clientpipelines.naming import ClientNames
from clientpipelines.operator import conditions, desired, lastrun, notify, policy
from clientpipelines.operator.conditions import Condition
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import InvalidSpec, PipelineSpec, SecretRef, parse_spec
from clientpipelines.runconfig import RunConfig

SPEC: dict[str, Any] = {
    "source": {
        "postgres": {
            "host": "db.acme.example",
            "port": 5432,
            "database": "omop",
            "schema": "public",
            "tables": ["provider", "care_site"],
            "sslMode": "require",
            "credentialsSecretRef": {"name": "acme-health-db"},
        }
    },
    "ingestion": {"mode": "cdc", "cdc": {"snapshotMode": "initial"}},
    "transform": {"schedule": "*/15 * * * *", "dbt": {"vars": {"a": 1}}},
    "deletionPolicy": "Delete",
}

SETTINGS = Settings(
    connect_url="http://connect:8083",
    nessie_url="http://nessie:19120/api/v2",
    trino_host="trino",
    trino_port=8080,
    kafka_bootstrap="kafka:9092",
    iceberg_properties={"iceberg.catalog.type": "nessie", "s3.aws-secret-key": "${ENV:S3}"},
    runner_env_secret="platform-runner",
    runner_image="registry.example/runner:1",
    allowed_images=("registry.example/runner@sha256:",),
)


def spec(**changes: Any) -> PipelineSpec:
    raw = copy.deepcopy(SPEC)
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_spec("acme-health", "clients", raw)


def test_parse_spec_applies_defaults_for_missing_fields() -> None:
    raw = copy.deepcopy(SPEC)
    del raw["ingestion"]
    del raw["deletionPolicy"]
    del raw["source"]["postgres"]["port"]
    parsed = parse_spec("acme-health", "clients", raw)
    assert (parsed.mode, parsed.port, parsed.deletion_policy) == ("cdc", 5432, "Retain")
    assert parsed.secret == SecretRef("acme-health-db", "username", "password")


def test_parse_spec_rejects_what_the_schema_should_have() -> None:
    with pytest.raises(InvalidSpec, match="KeyError"):
        parse_spec("acme-health", "clients", {"transform": {}})


def test_connector_config_follows_the_naming_contract() -> None:
    config = desired.build_connector_config(spec(), "reader", "s3cret", "kafka:9092")
    assert config["topic.prefix"] == "acme-health"
    assert config["slot.name"] == config["publication.name"] == "acme_health_cdc"
    assert config["table.include.list"] == "public.care_site,public.provider"
    assert config["database.sslmode"] == "require"
    assert config["snapshot.mode"] == "initial"
    assert all(isinstance(v, str) for v in config.values())
    # Change topics keep every event; heartbeats a day.
    assert config["topic.creation.default.retention.ms"] == "-1"
    assert config["topic.creation.default.cleanup.policy"] == "delete"
    assert re.fullmatch(
        config["topic.creation.heartbeat.include"], "__debezium-heartbeat.acme-health"
    )
    assert not re.fullmatch(
        config["topic.creation.heartbeat.include"], "acme-health.public.provider"
    )


def test_an_empty_tables_topic_is_made_as_kafka_connect_would_make_it() -> None:
    s = spec()
    topics = desired.build_change_topics(s)
    assert sorted(topics) == sorted(s.names.topic(s.schema, t) for t in s.tables)
    config = desired.build_connector_config(s, "u", "p", "kafka:9092")
    for topic_config in topics.values():
        assert {f"topic.creation.default.{k}": v for k, v in topic_config.items()}.items() <= (
            config.items()
        )
        assert topic_config["retention.ms"] == "-1"  # every change kept


def test_a_backfill_is_an_incremental_snapshot_signal_on_the_connectors_own_topic() -> None:
    s = spec()
    config = desired.build_connector_config(s, "u", "p", "kafka:9092")
    # Read-only: no signalling table in the client's database, signals from Kafka.
    assert config["read.only"] == "true"
    assert config["signal.enabled.channels"] == "kafka"
    assert config["signal.kafka.topic"] == s.names.signal_topic == "acme-health.signals"
    assert config["signal.kafka.bootstrap.servers"] == "kafka:9092"
    assert config["signal.kafka.groupId"] == s.names.connector
    topic, key, value = desired.build_snapshot_signal(s, ["provider", "care_site"])
    assert (topic, key) == (s.names.signal_topic, config["topic.prefix"])
    assert json.loads(value) == {
        "type": "execute-snapshot",
        "data": {
            "data-collections": ["public.care_site", "public.provider"],
            "type": "INCREMENTAL",
        },
    }
    # The client's topics are all its own: deleted with it, never another client's.
    assert s.names.owns_topic(s.names.signal_topic)
    assert not ClientNames("acme").owns_topic(s.names.signal_topic)


def test_connector_diff_ignores_connects_name_key_and_reports_keys_not_values() -> None:
    want = desired.build_connector_config(spec(), "reader", "s3cret", "kafka:9092")
    live = {**want, "name": "acme-health-cdc"}
    assert not desired.connector_config_differs(want, live)
    assert desired.connector_config_differs(want, None)
    rotated = {**live, "database.password": "old"}
    assert desired.connector_config_differs(want, rotated)
    assert desired.changed_keys(want, rotated) == ["database.password"]


def test_cdc_mode_builds_kafka_and_staging_catalogs() -> None:
    cats = desired.build_catalogs(spec(), SETTINGS)
    assert set(cats) == {"acme_health_cdc", "acme_health_staging"}
    kafka = cats["acme_health_cdc"]
    assert kafka.connector == "kafka"
    assert kafka.properties["kafka.table-names"] == (
        "acme-health.public.care_site,acme-health.public.provider"
    )
    staging = cats["acme_health_staging"]
    assert staging.properties["iceberg.nessie-catalog.ref"] == "acme-health-staging"
    assert staging.properties["s3.aws-secret-key"] == "${ENV:S3}"


def test_full_reload_builds_a_postgres_catalog_whose_fingerprint_holds_no_secret() -> None:
    s = spec(ingestion__mode="full-reload", ingestion__cdc=None)
    a = desired.build_catalogs(s, SETTINGS, username="u", password="p1", secret_version="7")
    assert set(a) == {"acme_health_src", "acme_health_staging"}
    src = a["acme_health_src"]
    assert src.properties["connection-url"] == (
        "jdbc:postgresql://db.acme.example:5432/omop?sslmode=require"
    )
    b = desired.build_catalogs(s, SETTINGS, username="u", password="p2", secret_version="7")
    assert b["acme_health_src"].fingerprint == src.fingerprint  # the value is not hashed...
    c = desired.build_catalogs(s, SETTINGS, username="u", password="p2", secret_version="8")
    assert c["acme_health_src"].fingerprint != src.fingerprint  # ...its Secret's version is


def test_cronjob_is_owned_forbids_overlap_and_holds_no_secret_value() -> None:
    cron = desired.build_cronjob(spec(), SETTINGS, {"name": "acme-health", "uid": "u-1"})
    assert cron["metadata"]["name"] == "acme-health-pipeline"
    owner = cron["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ClientPipeline", "u-1", True)
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = job["containers"][0]
    assert container["command"] == ["clientpipelines-runner", "run"]
    assert container["envFrom"] == [{"secretRef": {"name": "platform-runner"}}]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["DBT_VARS"] == '{"a": 1}'
    # The run's id is the Job's name, from the label the Job controller sets.
    run_id = next(e for e in container["env"] if e["name"] == "RUN_ID")
    assert run_id["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    # The runner reads back exactly what the operator meant: one contract, both ways.
    assert RunConfig.from_env(env) == desired.build_run_config(spec(), SETTINGS)
    assert container["securityContext"]["runAsNonRoot"] is True
    assert job["automountServiceAccountToken"] is False
    assert job["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["image"] == "registry.example/runner:1"  # the platform's, by default
    suspended = desired.build_cronjob(
        spec(transform__suspend=True), SETTINGS, {"name": "acme-health", "uid": "u-1"}
    )
    assert suspended["spec"]["suspend"] is True


def test_continuous_mode_keeps_one_runner_up_and_suspends_the_schedule() -> None:
    owner = {"name": "acme-health", "uid": "u-1"}
    pipeline = spec(transform__mode="continuous", transform__intervalSeconds=7)
    deployment = desired.build_continuous_deployment(pipeline, SETTINGS, owner)
    assert deployment["metadata"]["name"] == "acme-health-continuous"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert deployment["spec"]["replicas"] == 1
    # Never two runners of one client, not even while a new version rolls out.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
    pod = template["spec"]
    assert pod["restartPolicy"] == "Always"
    # A batch in progress gets as long to finish as a scheduled run has.
    assert pod["terminationGracePeriodSeconds"] == pipeline.active_deadline
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["RUN_CONTINUOUS"], env["RUN_INTERVAL_SECONDS"]) == ("true", "7")
    run_id = next(e for e in container["env"] if e["name"] == "RUN_ID")
    assert run_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The same run contract and Pod as a scheduled run's, apart from those.
    cron = desired.build_cronjob(pipeline, SETTINGS, owner)
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert RunConfig.from_env({k: v for k, v in env.items() if v is not None}) == (
        desired.build_run_config(pipeline, SETTINGS)
    )
    assert pod["volumes"] == job_pod["volumes"]
    assert pod["serviceAccountName"] == job_pod["serviceAccountName"]
    # The schedule is suspended: its template serves only requested runs, which wait
    # for the batch in progress instead of failing on the lock it holds.
    assert cron["spec"]["suspend"] is True
    job_env = {e["name"]: e.get("value") for e in job_pod["containers"][0]["env"]}
    assert job_env["RUN_LOCK_WAIT_SECONDS"] == str(desired.REQUESTED_RUN_LOCK_WAIT)
    assert "RUN_LOCK_WAIT_SECONDS" not in env
    scheduled = desired.build_cronjob(spec(), SETTINGS, owner)["spec"]["jobTemplate"]["spec"]
    assert "RUN_LOCK_WAIT_SECONDS" not in {
        e["name"] for e in scheduled["template"]["spec"]["containers"][0]["env"]
    }
    assert desired.build_cronjob(spec(), SETTINGS, owner)["spec"]["suspend"] is False
    suspended = spec(transform__mode="continuous", transform__suspend=True)
    assert desired.build_continuous_deployment(suspended, SETTINGS, owner)["spec"]["replicas"] == 0


def test_the_runner_image_is_the_platforms_unless_an_allowed_one_is_named() -> None:
    assert desired.runner_image(spec(), SETTINGS) == "registry.example/runner:1"
    pinned = "registry.example/runner@sha256:" + "a" * 64
    assert desired.runner_image(spec(transform__image=pinned), SETTINGS) == pinned
    for foreign in ("evil.example/runner:1", "registry.example/runner:2", "registry.example/x"):
        assert desired.runner_image(spec(transform__image=foreign), SETTINGS) is None
        refused = policy.refusal(spec(transform__image=foreign), SETTINGS, uid="u", claims=())
        assert refused is not None
        assert (refused.reason, refused.condition) == ("ImageNotAllowed", "ScheduleReady")


def test_without_a_platform_image_a_pipeline_must_name_one() -> None:
    unset = dataclasses.replace(SETTINGS, runner_image=None)
    refused = policy.refusal(spec(), unset, uid="u", claims=())
    assert refused is not None
    assert refused.reason == "NoRunnerImage"


def test_a_client_id_belongs_to_its_oldest_pipeline() -> None:
    first = policy.Claim("team-a", "acme-health", "u-1", "2026-01-01T00:00:00Z")
    second = policy.Claim("team-b", "acme-health", "u-2", "2026-02-01T00:00:00Z")
    assert policy.holder([second, first]) == first
    assert policy.refusal(spec(), SETTINGS, uid="u-1", claims=(first, second)) is None
    taken = policy.refusal(spec(), SETTINGS, uid="u-2", claims=(first, second))
    assert taken is not None
    assert taken.reason == "ClientIdTaken"
    assert "team-a/acme-health" in taken.message


def test_is_subset_ignores_server_defaults_but_not_changes() -> None:
    want = {"a": {"b": [{"c": 1}]}, "d": "x"}
    live = {"a": {"b": [{"c": 1, "default": True}], "extra": 2}, "d": "x"}
    assert desired.is_subset(want, live)
    assert not desired.is_subset({"d": "y"}, live)
    assert not desired.is_subset({"a": {"b": [{"c": 1}, {"c": 2}]}}, live)


def test_conditions_keep_transition_time_until_the_status_flips() -> None:
    first = conditions.merge(None, [Condition("Ready", False, "Starting")], generation=1, now="t1")
    same = conditions.merge(first, [Condition("Ready", False, "Other")], generation=1, now="t2")
    flipped = conditions.merge(same, [Condition("Ready", True, "Ok")], generation=2, now="t3")
    assert [c["lastTransitionTime"] for c in (*first, *same, *flipped)] == ["t1", "t1", "t3"]
    assert flipped[0]["observedGeneration"] == 2
    assert conditions.transitions(same, flipped) == flipped
    assert conditions.transitions(first, same) == []


def test_ready_names_the_failing_parts() -> None:
    ok = Condition("CatalogsReady", True, "CatalogsExist")
    down = Condition("ConnectorReady", False, "KafkaConnectUnavailable", "connection refused")
    assert conditions.ready([ok]).status
    r = conditions.ready([ok, down])
    assert (r.status, r.reason) == (False, "KafkaConnectUnavailable")
    assert "ConnectorReady: connection refused" in r.message


def test_last_run_phases_and_ordering() -> None:
    def job(name: str, start: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"startTime": start, **status}}

    running = lastrun.run_of(job("j1", "2026-01-01T00:00:00Z"))
    failed = lastrun.run_of(
        job(
            "j1",
            "2026-01-01T00:00:00Z",
            failed=1,
            conditions=[{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}],
        )
    )
    done = lastrun.run_of(
        job("j2", "2026-01-01T00:15:00Z", succeeded=1, completionTime="2026-01-01T00:16:00Z")
    )
    assert (running["phase"], failed["phase"], done["phase"]) == ("Running", "Failed", "Succeeded")
    assert failed["message"] == "BackoffLimitExceeded"
    assert lastrun.is_newer(failed, running)
    assert lastrun.is_newer(done, failed)
    assert not lastrun.is_newer(running, done)


def test_failed_runs_turn_a_condition_then_degrade_and_a_success_resets() -> None:
    def job(name: str, start: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"startTime": start, **status}}

    def apply(status: dict[str, Any], j: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        change = lastrun.next_status(status, lastrun.run_of(j), degraded_after=2, now="t")
        assert change is not None
        patch, events = change
        return {**status, **patch}, events

    others = [{"type": "Ready", "status": "True", "reason": "AllPartsReady"}]
    status: dict[str, Any] = {"conditions": others}
    status, events = apply(status, job("j1", "2026-01-01T00:00:00Z"))  # running: no verdict
    assert events == []
    assert "failedRunsInARow" not in status
    failed = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "message": "x"}]}
    status, events = apply(status, job("j1", "2026-01-01T00:00:00Z", **failed))
    assert status["failedRunsInARow"] == 1
    assert [e[1] for e in events] == ["RunFailed"]
    cond = {c["type"]: c for c in status["conditions"]}
    assert (cond["LastRunSucceeded"]["status"], cond["LastRunSucceeded"]["reason"]) == (
        "False",
        "RunFailed",
    )
    assert cond["Ready"]["reason"] == "AllPartsReady"  # the parts' conditions stay
    # The same Job seen again changes nothing (no second Event, no second count).
    assert (
        lastrun.next_status(
            status,
            lastrun.run_of(job("j1", "2026-01-01T00:00:00Z", **failed)),
            degraded_after=2,
            now="t",
        )
        is None
    )
    status, _ = apply(status, job("j2", "2026-01-01T00:15:00Z", **failed))
    cond = {c["type"]: c for c in status["conditions"]}
    assert (status["failedRunsInARow"], cond["LastRunSucceeded"]["reason"]) == (2, "RunsFailing")
    done = {"succeeded": 1, "completionTime": "2026-01-01T00:31:00Z"}
    status, events = apply(status, job("j3", "2026-01-01T00:30:00Z", **done))
    cond = {c["type"]: c for c in status["conditions"]}
    assert (status["failedRunsInARow"], cond["LastRunSucceeded"]["status"]) == (0, "True")
    assert status["lastSuccessfulRun"]["job"] == "j3"
    assert status["lastRun"]["message"] is None  # the failure's message is cleared
    assert events == []


def test_a_failed_run_notification_is_slack_compatible_and_routable() -> None:
    pipeline = {
        "metadata": {"namespace": "clients", "name": "acme-health"},
        "status": {"lastRun": {"job": "j2"}, "failedRunsInARow": 2},
    }
    payload = notify.failed_run_payload(pipeline, "2 run(s) failed in a row")
    assert payload["text"].startswith("Pipeline run failed for client clients/acme-health")
    assert (payload["event"], payload["client"], payload["job"]) == (
        "RunFailed",
        "acme-health",
        "j2",
    )
    assert payload["failedRunsInARow"] == 2


def test_last_run_links_the_report_its_job_stored() -> None:
    reporting = dataclasses.replace(SETTINGS, reports_uri="s3://reports/runs")
    cron = desired.build_cronjob(spec(), reporting, {"name": "acme-health", "uid": "u-1"})
    job = {
        "metadata": {"name": "acme-health-pipeline-29000000"},
        "spec": cron["spec"]["jobTemplate"]["spec"],
        "status": {"startTime": "t", "succeeded": 1},
    }
    where = "s3://reports/runs/acme-health/acme-health-pipeline-29000000.html"
    # The same name the runner uploads to: the run contract computes both.
    contract = desired.build_run_config(spec(), reporting)
    assert contract.report_uri("acme-health-pipeline-29000000") == where
    assert lastrun.run_of(job, {"report": where})["report"] == where
    # Not stored (no Elementary, nothing new, a failure), or said to be elsewhere: no link.
    assert "report" not in lastrun.run_of(job, {})
    assert "report" not in lastrun.run_of(job, {"report": "s3://elsewhere/x.html"})
    plain = desired.build_cronjob(spec(), SETTINGS, {"name": "acme-health", "uid": "u-1"})
    unset = {**job, "spec": plain["spec"]["jobTemplate"]["spec"]}
    assert "report" not in lastrun.run_of(unset, {"report": where})


def test_the_runners_outcome_names_failed_checks_and_a_failed_report() -> None:
    job = {
        "metadata": {"name": "j9"},
        "status": {"startTime": "t", "failed": 1},
    }
    outcome = lastrun.parse_outcome(
        [
            "not json",
            json.dumps(
                {
                    "exitCode": 1,
                    "failed": ["relationships_provider_care_site_id"],
                    "warned": ["accepted_values_provider_gender_source_value"],
                    "reportError": "edr report exited 1: boom",
                }
            ),
        ]
    )
    run = lastrun.run_of(job, outcome)
    assert run["failedChecks"] == ["relationships_provider_care_site_id"]
    assert run["warnedTests"] == ["accepted_values_provider_gender_source_value"]
    assert run["reportError"].startswith("edr report exited 1")
    change = lastrun.next_status({}, run, degraded_after=3, now="t")
    assert change is not None
    patch, events = change
    kinds = {reason: message for _, reason, message in events}
    assert "failed: relationships_provider_care_site_id" in kinds["RunFailed"]
    assert "the Elementary report failed" in kinds["ReportFailed"]
    # A later run's status clears what this one said (merge patch: None removes).
    ok = lastrun.run_of({"metadata": {"name": "j10"}, "status": {"startTime": "u", "succeeded": 1}})
    later = lastrun.next_status(patch, ok, degraded_after=3, now="u")
    assert later is not None
    assert later[0]["lastRun"]["failedChecks"] is None
    assert later[0]["lastRun"]["reportError"] is None


def test_over_https_a_run_is_its_clients_own_principal_with_a_projected_token(
    tmp_path: Any,
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    https = dataclasses.replace(SETTINGS, trino_scheme="https", trino_ca_file=str(ca))
    owner = {"name": "acme-health", "uid": "u-1"}
    job = desired.build_cronjob(spec(), https, owner)["spec"]["jobTemplate"]["spec"]["template"]
    pod = job["spec"]
    assert pod["serviceAccountName"] == "acme-health-runner"
    # No token for the Kubernetes API; one for Trino only, outliving the run.
    assert pod["automountServiceAccountToken"] is False
    (projected,) = [v["projected"] for v in pod["volumes"] if "projected" in v]
    (source,) = projected["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "trino"
    assert token["expirationSeconds"] >= spec().active_deadline + 600
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "trino-token")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["TRINO_TOKEN_FILE"] == f"{mount['mountPath']}/{token['path']}"
    assert env["TRINO_HTTP_SCHEME"] == "https"
    assert env["TRINO_CA_PEM"] == ca.read_text()
    # No platform credential of Trino reaches the Pod, only the contract above.
    assert not any(k.startswith("TRINO_CLIENT") for k in env)
    assert RunConfig.from_env(env) == desired.build_run_config(spec(), https)
    account = desired.build_service_account(spec(), owner)
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert ClientNames("acme-health").runner_principal("clients") == (
        "system:serviceaccount:clients:acme-health-runner"
    )
    # Plain HTTP (no authentication): no token is asked for.
    plain = desired.build_cronjob(spec(), SETTINGS, owner)["spec"]["jobTemplate"]["spec"]
    assert not [v for v in plain["template"]["spec"]["volumes"] if "projected" in v]


def test_with_a_credentials_folder_the_full_reload_login_is_a_file_not_statement_text() -> None:
    folder = dataclasses.replace(SETTINGS, trino_credentials_dir="/var/lib/trino/credentials/")
    s = spec(ingestion__mode="full-reload", ingestion__cdc=None)
    src = desired.build_catalogs(s, folder, username="ana", password="p=1:é\\", secret_version="7")[
        "acme_health_src"
    ]
    text = json.dumps(src.properties)
    assert "p=1" not in text and "ana" not in text
    assert src.properties["credential-provider.type"] == "FILE"
    path, content = src.credentials_file  # type: ignore[misc]
    assert path == src.properties["connection-credential-file"]
    assert path == "/var/lib/trino/credentials/acme_health_src.properties"
    # Java properties: separators and backslashes escaped, non-ASCII as \u escapes.
    assert content == "connection-password=p\\=1\\:\\u00e9\\\\\nconnection-user=ana\n"
    assert desired.java_properties({"k": "😀"}) == "k=\\ud83d\\ude00\n"


def test_with_a_credentials_folder_the_connector_config_holds_a_reference_not_the_login() -> None:
    path, text = desired.connector_credentials_file(spec(), "/creds/", "reader", "s3cret", "41")
    assert path == "/creds/acme-health-cdc.41.properties"
    assert text == "database.password=s3cret\ndatabase.user=reader\n"
    config = desired.build_connector_config(
        spec(), "reader", "s3cret", "kafka:9092", credentials_file=path
    )
    assert config["database.password"] == f"${{file:{path}:database.password}}"
    assert config["database.user"] == f"${{file:{path}:database.user}}"
    assert "s3cret" not in json.dumps(config) and "reader" not in json.dumps(config)
    # A rotated Secret (new version) is a new file, so a changed config: Connect
    # restarts the connector, which then reads the new login.
    rotated, _ = desired.connector_credentials_file(spec(), "/creds", "reader", "n3w", "42")
    assert rotated != path


def test_readers_come_from_spec_access_sorted() -> None:
    assert spec().readers == ()
    assert spec(access__readers=["zoe", "ana@example.com"]).readers == ("ana@example.com", "zoe")


def test_with_nessie_authentication_a_run_gets_its_own_nessie_token() -> None:
    secured = dataclasses.replace(SETTINGS, nessie_token_file="/var/run/operator/nessie")
    owner = {"name": "acme-health", "uid": "u-1"}
    pod = desired.build_cronjob(spec(), secured, owner)["spec"]["jobTemplate"]["spec"]["template"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (source,) = volumes["nessie-token"]["projected"]["sources"]
    token = source["serviceAccountToken"]
    # Made for Nessie alone: Trino, or the Kubernetes API, refuses it.
    assert token["audience"] == "nessie"
    (container,) = pod["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "nessie-token")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["NESSIE_TOKEN_FILE"] == f"{mount['mountPath']}/{token['path']}"
    # The operator's own token never reaches a run.
    assert "/var/run/operator/nessie" not in json.dumps(pod)
    # Without authentication in Nessie, no token.
    plain = desired.build_cronjob(spec(), SETTINGS, owner)["spec"]["jobTemplate"]["spec"]
    assert "nessie-token" not in json.dumps(plain)
