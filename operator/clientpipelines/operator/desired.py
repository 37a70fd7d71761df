"""Pure functions: the desired state of every part, built from a parsed ClientPipeline spec.

Nothing here does I/O; the `ensure_*` functions in `parts/` compare these with the
live systems and write only on a difference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clientpipelines import omop
from clientpipelines.manifests import (
    API_VERSION,
    JOB_NAME_LABEL,
    KIND,
    LABEL_CLIENT,
    LABEL_MANAGED_BY,
    MANAGER,
)
from clientpipelines.naming import ClientNames
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import PipelineSpec
from clientpipelines.runconfig import (
    RUN_CONTINUOUS_ENV,
    RUN_ID_ENV,
    RUN_INTERVAL_ENV,
    RUN_LOCK_WAIT_ENV,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    RunConfig,
)

RUNNER_COMMAND = ["clientpipelines-runner", "run"]
# Seconds a requested run of a continuous pipeline waits for the runner's batch in
# progress to release the client's lock (a batch takes seconds to minutes).
REQUESTED_RUN_LOCK_WAIT = 900
# Where a run's ServiceAccount tokens are mounted, as the kubelet projects them:
# one volume per service, each token made for that service's audience alone.
RUNNER_TOKEN_DIR = "/var/run/secrets/clientpipelines/trino"  # noqa: S105 - a path
RUNNER_TOKEN_FILE = f"{RUNNER_TOKEN_DIR}/token"
RUNNER_NESSIE_TOKEN_DIR = "/var/run/secrets/clientpipelines/nessie"  # noqa: S105 - a path
RUNNER_NESSIE_TOKEN_FILE = f"{RUNNER_NESSIE_TOKEN_DIR}/token"
HEARTBEAT_RETENTION_MS = 24 * 3600 * 1000
# Every change topic's settings: what Kafka Connect creates a topic with
# (topic.creation.default.*) and what the operator creates an empty table's topic
# with, so the two are the same. Change topics keep every event for ever: the
# runner reads each table's changes since its watermark and a full refresh replays
# a topic from offset 0, so an expired head would silently drop every row whose
# last change expired. Not compaction: it would leave gaps below the watermark and
# make every check of the published watermark fail into a needless full refresh.
CHANGE_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
UNAVAILABLE_VALUE = "__debezium_unavailable_value"


# -- Debezium connector ----------------------------------------------------------------


def connector_credentials_file(
    spec: PipelineSpec, folder: str, username: str, password: str, secret_version: str
) -> tuple[str, str]:
    """The file Kafka Connect reads the client's login from (path, Java properties).

    Its name holds the Secret's version, so a rotated password changes the
    connector's config, which restarts the connector with the new login.
    """
    path = f"{folder.rstrip('/')}/{spec.names.connector}.{secret_version or '0'}.properties"
    return path, java_properties({"database.user": username, "database.password": password})


def build_connector_config(
    spec: PipelineSpec,
    username: str,
    password: str,
    kafka_bootstrap: str,
    *,
    credentials_file: str | None = None,
) -> dict[str, str]:
    """The Debezium Postgres connector's config (Kafka Connect stores every value as a string).

    With `credentials_file` the login is a reference that Kafka Connect resolves
    when it starts the connector (its FileConfigProvider, named `file`): the
    stored config, which Connect's REST API returns, holds no password.
    """
    names = spec.names
    if credentials_file:
        username = f"${{file:{credentials_file}:database.user}}"
        password = f"${{file:{credentials_file}:database.password}}"
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": spec.host,
        "database.port": str(spec.port),
        "database.user": username,
        "database.password": password,
        "database.dbname": spec.database,
        "database.sslmode": spec.ssl_mode,
        "topic.prefix": names.topic_prefix,
        "table.include.list": ",".join(f"{spec.schema}.{t}" for t in sorted(spec.tables)),
        "slot.name": names.replication_slot,
        "publication.name": names.publication,
        # The connector keeps the publication's table list equal to table.include.list.
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": spec.snapshot_mode,
        # A table added to a running pipeline is backfilled by an incremental snapshot
        # the operator asks for on the signal topic. read.only: Debezium then needs no
        # signalling table in the client's database (and no write access to it); it
        # brackets each chunk with pg_current_snapshot() instead.
        "read.only": "true",
        "signal.enabled.channels": "kafka",
        "signal.kafka.topic": names.signal_topic,
        "signal.kafka.bootstrap.servers": kafka_bootstrap,
        # Each connector its own consumer group (Debezium's default is one shared name).
        "signal.kafka.groupId": names.connector,
        "heartbeat.interval.ms": str(spec.heartbeat_ms),
        # A delete is one event with op=d; no extra null "tombstone" record.
        "tombstones.on.delete": "false",
        # An unchanged TOASTed value's stand-in; the dbt project's var
        # debezium_unavailable_value names the same (the change log fills it in).
        "unavailable.value.placeholder": UNAVAILABLE_VALUE,
        **_row_keys(spec),
        # Exact: decimals as strings, dates as days and timestamps as microseconds since
        # the epoch (the CDM's TIMESTAMP columns); dbt/macros/cdc.sql types them back.
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        # Kafka Connect creates the topics of tables with rows (not with the
        # broker's defaults: CHANGE_TOPIC_CONFIG); the operator those of empty ones.
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "-1",
        **{f"topic.creation.default.{k}": v for k, v in CHANGE_TOPIC_CONFIG.items()},
        # Heartbeats carry no data: a day of them is plenty.
        "topic.creation.groups": "heartbeat",
        "topic.creation.heartbeat.include": names.heartbeat_topic.replace(".", "\\."),
        "topic.creation.heartbeat.replication.factor": "-1",
        "topic.creation.heartbeat.partitions": "1",
        "topic.creation.heartbeat.retention.ms": str(HEARTBEAT_RETENTION_MS),
    }


def build_change_topics(spec: PipelineSpec) -> dict[str, dict[str, str]]:
    """Each onboarded table's change topic and its settings (pure).

    Debezium creates a topic with a table's first event: an empty table would have
    none, the kafka catalog would name a topic that does not exist, and every run
    would fail until the table got a row. The operator creates them up front.
    """
    return {spec.names.topic(spec.schema, t): dict(CHANGE_TOPIC_CONFIG) for t in spec.tables}


# The signal topic: one partition (Debezium reads signals in order from partition 0),
# a week of signals is plenty (a signal is consumed within seconds of being sent).
SIGNAL_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def build_snapshot_signal(spec: PipelineSpec, tables: list[str]) -> tuple[str, str, str]:
    """(topic, key, value) of the Kafka message that starts an incremental snapshot of
    `tables` (pure). Debezium acts on a message whose key is its topic.prefix."""
    value = {
        "type": "execute-snapshot",
        "data": {
            "data-collections": [f"{spec.schema}.{t}" for t in sorted(tables)],
            "type": "INCREMENTAL",
        },
    }
    return spec.names.signal_topic, spec.names.topic_prefix, json.dumps(value)


def _row_keys(spec: PipelineSpec) -> dict[str, str]:
    """Kafka message keys for CDM tables without a primary key (omop.ROW_KEYS), so a
    row's events share a partition and stay in order; their source needs REPLICA
    IDENTITY FULL (Postgres refuses updates and deletes on them otherwise)."""
    keyed = [
        f"{spec.schema}.{t}:{','.join(omop.table(t).key)}"
        for t in sorted(spec.tables)
        if t in omop.load() and not omop.table(t).primary_key
    ]
    return {"message.key.columns": ";".join(keyed)} if keyed else {}


def connector_config_differs(desired: Mapping[str, str], live: Mapping[str, str] | None) -> bool:
    """True when the live config is missing or any desired key differs ("name" is Connect's own)."""
    if live is None:
        return True
    live_cmp = {k: v for k, v in live.items() if k != "name"}
    return dict(desired) != live_cmp


def changed_keys(desired: Mapping[str, str], live: Mapping[str, str] | None) -> list[str]:
    """Which keys differ, for logs and events: names only, never values."""
    live = {k: v for k, v in (live or {}).items() if k != "name"}
    return sorted(k for k in set(desired) | set(live) if desired.get(k) != live.get(k))


# -- Trino catalogs -----------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogSpec:
    name: str
    connector: str
    properties: dict[str, str]
    # Included in the fingerprint instead of the secret values themselves, so that
    # a rotated password recreates the catalog while status holds no secret material.
    secret_version: str = ""
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    # A credentials file Trino reads for the catalog (path, Java properties text):
    # the login stays out of the CREATE CATALOG text, which Trino keeps in its
    # query history (system.runtime.queries) as sent.
    credentials_file: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        visible = {k: v for k, v in self.properties.items() if k not in self.secret_keys}
        material = json.dumps(
            [self.connector, visible, self.secret_version], sort_keys=True
        ).encode()
        return hashlib.sha256(material).hexdigest()[:16]


def catalog_login_path(spec: PipelineSpec, settings: Settings) -> str | None:
    """Where Trino reads the client's postgres catalog's login (None: inline)."""
    if not settings.trino_credentials_dir:
        return None
    return f"{settings.trino_credentials_dir.rstrip('/')}/{spec.names.source_catalog}.properties"


def java_properties(values: Mapping[str, str]) -> str:
    """`values` as a Java properties file (what Trino's credential files are)."""

    def escape(text: str) -> str:
        out = []
        for ch in text:
            if ch in "\\=:#!":
                out.append("\\" + ch)
            elif not (" " < ch < "\x7f"):
                units = ch.encode("utf-16-be")  # \\u escapes are UTF-16 code units
                out += [
                    f"\\u{int.from_bytes(units[i : i + 2]):04x}" for i in (0, 2)[: len(units) // 2]
                ]
            else:
                out.append(ch)
        return "".join(out)

    return "".join(f"{escape(k)}={escape(v)}\n" for k, v in sorted(values.items()))


def build_catalogs(
    spec: PipelineSpec,
    settings: Settings,
    *,
    username: str = "",
    password: str = "",
    secret_version: str = "",
) -> dict[str, CatalogSpec]:
    """The catalogs the operator owns for this client, by name."""
    names = spec.names
    catalogs = {
        names.staging_catalog: CatalogSpec(
            names.staging_catalog,
            "iceberg",
            {**settings.iceberg_properties, "iceberg.nessie-catalog.ref": names.staging_branch},
        )
    }
    if spec.cdc:
        catalogs[names.cdc_catalog] = CatalogSpec(
            names.cdc_catalog,
            "kafka",
            {
                "kafka.nodes": settings.kafka_bootstrap,
                "kafka.table-names": ",".join(
                    names.topic(spec.schema, t) for t in sorted(spec.tables)
                ),
                # The dbt project reads the Debezium envelope from _message and
                # the offsets from _partition_id / _partition_offset.
                "kafka.hide-internal-columns": "false",
            },
        )
    else:
        login = {"connection-user": username, "connection-password": password}
        credentials_file = None
        if settings.trino_credentials_dir:
            # Trino's JDBC connectors read the login from a file (credential-provider
            # FILE), so the statement names only the file.
            path = str(catalog_login_path(spec, settings))
            credentials_file = (path, java_properties(login))
            login = {"credential-provider.type": "FILE", "connection-credential-file": path}
        catalogs[names.source_catalog] = CatalogSpec(
            names.source_catalog,
            "postgresql",
            {
                "connection-url": (
                    f"jdbc:postgresql://{spec.host}:{spec.port}/{spec.database}"
                    f"?sslmode={spec.ssl_mode}"
                ),
                **login,
                # The CDM's float columns are NUMERIC without precision in Postgres,
                # which Trino skips unless mapped; the models cast them to double.
                "decimal-mapping": "ALLOW_OVERFLOW",
                "decimal-default-scale": "16",
                "decimal-rounding-mode": "HALF_UP",
            },
            secret_version=secret_version,
            secret_keys=frozenset({"connection-password"}),
            credentials_file=credentials_file,
        )
    return catalogs


def owned_catalog_names(client_id: str) -> tuple[str, ...]:
    """Every catalog name the operator may own for a client, whatever its mode."""
    return ClientNames(client_id).client_catalogs


# -- the run contract and the CronJob ---------------------------------------------------------


def build_run_config(spec: PipelineSpec, settings: Settings) -> RunConfig:
    """What each run of this pipeline is told (the CronJob's environment)."""
    return RunConfig(
        client_id=spec.client_id,
        ingestion_mode=spec.mode,
        source_schema=spec.schema,
        tables=tuple(sorted(spec.tables)),
        trino_host=settings.trino_host,
        trino_port=settings.trino_port,
        nessie_url=settings.nessie_url,
        deadline_seconds=spec.active_deadline,
        dbt_select=spec.dbt_select,
        dbt_vars=spec.dbt_vars,
        reports_uri=settings.reports_uri,
        reports_s3_endpoint=settings.reports_s3_endpoint,
        trino_scheme=settings.trino_scheme,
        # Over HTTPS a run is its own principal: its ServiceAccount's token.
        trino_token_file=RUNNER_TOKEN_FILE if settings.trino_scheme == "https" else None,
        trino_ca_pem=settings.trino_ca_pem(),
        # Where Nessie authenticates, a run is its own principal there too.
        nessie_token_file=RUNNER_NESSIE_TOKEN_FILE if settings.nessie_token_file else None,
    )


def _owner_reference(owner: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner["name"],
        "uid": owner["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_service_account(spec: PipelineSpec, owner: Mapping[str, str]) -> dict[str, Any]:
    """The identity the client's runs act as; its tokens are what Trino authenticates."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": spec.names.runner_service_account,
            "namespace": spec.namespace,
            "labels": {LABEL_CLIENT: spec.client_id, LABEL_MANAGED_BY: MANAGER},
            "ownerReferences": [_owner_reference(owner)],
        },
        # Only the projected tokens the CronJob asks for (audiences Trino and
        # Nessie), never one for the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def token_lifetime(spec: PipelineSpec) -> int:
    """A run's token outlives the run (read once at its start): its deadline plus ten minutes."""
    return max(3600, spec.active_deadline + 600)


def runner_image(spec: PipelineSpec, settings: Settings) -> str | None:
    """The image the pipeline's runs use: the spec's if allowed, else None (refused).

    The platform chooses what runs with a client's data: the operator's image, or
    one whose name starts with a prefix the operator's settings allow (a
    repository, or a pinned digest).
    """
    if spec.image is None or spec.image == settings.runner_image:
        return settings.runner_image
    if any(spec.image.startswith(prefix) for prefix in settings.allowed_images):
        return spec.image
    return None


def build_runner_pod(
    spec: PipelineSpec, settings: Settings, *, continuous: bool = False
) -> dict[str, Any]:
    """The runner's Pod template: the scheduled runs' (a Job each) or, with
    `continuous`, the one runner a continuous-mode pipeline keeps up."""
    names = spec.names
    labels = {LABEL_CLIENT: spec.client_id, LABEL_MANAGED_BY: MANAGER}
    run = build_run_config(spec, settings)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in run.to_env().items()]
    env += [{"name": k, "value": v} for k, v in sorted(settings.runner_env.items())]
    # Where the run leaves its outcome (failed tests, report) for status.lastRun.
    env.append({"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG})
    # A run's id is its Job's name: status.lastRun finds the run's report from it.
    # A continuous runner's batches are "<Pod name>-<batch number>".
    run_id_field = "metadata.name" if continuous else f"metadata.labels['{JOB_NAME_LABEL}']"
    env.append({"name": RUN_ID_ENV, "valueFrom": {"fieldRef": {"fieldPath": run_id_field}}})
    if continuous:
        env.append({"name": RUN_CONTINUOUS_ENV, "value": "true"})
        env.append({"name": RUN_INTERVAL_ENV, "value": str(spec.interval_seconds)})
    elif spec.continuous:
        # A requested run (run-now, a full refresh) of a continuous pipeline waits for
        # the batch in progress instead of failing on the lock it holds.
        env.append({"name": RUN_LOCK_WAIT_ENV, "value": str(REQUESTED_RUN_LOCK_WAIT)})
    image = runner_image(spec, settings)
    if image is None:
        raise ValueError(f"image {spec.image!r} is not allowed")  # the policy refuses first
    container: dict[str, Any] = {
        "name": "runner",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        # The client and everything else come from the environment (the run contract).
        "command": RUNNER_COMMAND,
        "env": env,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - dbt's scratch space
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    for volume, token_file, audience in (
        ("trino-token", run.trino_token_file, settings.trino_token_audience),
        ("nessie-token", run.nessie_token_file, settings.nessie_token_audience),
    ):
        if not token_file:
            continue
        folder, file_name = token_file.rsplit("/", 1)
        container["volumeMounts"].append({"name": volume, "mountPath": folder, "readOnly": True})
        volumes.append(
            {
                "name": volume,
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": audience,
                                "expirationSeconds": token_lifetime(spec),
                                "path": file_name,
                            }
                        }
                    ]
                },
            }
        )
    if settings.runner_env_secret:
        # Platform credentials (e.g. Trino's) by reference, never as values.
        container["envFrom"] = [{"secretRef": {"name": settings.runner_env_secret}}]
    if spec.resources:
        container["resources"] = spec.resources
    pod_spec: dict[str, Any] = {
        # A Deployment's Pod restarts its runner if it ever exits; a Job's never.
        "restartPolicy": "Always" if continuous else "Never",
        "serviceAccountName": names.runner_service_account,
        # The runner needs nothing from the Kubernetes API: no token for it, only
        # the projected ones for Trino and Nessie.
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if continuous:
        # SIGTERM lets the batch in progress finish (and publish) before it stops.
        pod_spec["terminationGracePeriodSeconds"] = spec.active_deadline
    return {"metadata": {"labels": labels}, "spec": pod_spec}


def build_cronjob(
    spec: PipelineSpec, settings: Settings, owner: Mapping[str, str]
) -> dict[str, Any]:
    """The CronJob that runs the pipeline runner, owned by the ClientPipeline.

    In continuous mode it is suspended: its template then serves only requested
    runs (run-now, a full refresh), which take the client's lock between batches.
    """
    names = spec.names
    labels = {LABEL_CLIENT: spec.client_id, LABEL_MANAGED_BY: MANAGER}
    cron_spec: dict[str, Any] = {
        "schedule": spec.schedule,
        "suspend": spec.suspend or spec.continuous,
        # Two runs of one client never overlap; the runner also refuses to.
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": spec.successful_history,
        "failedJobsHistoryLimit": spec.failed_history,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": spec.active_deadline,
                "template": build_runner_pod(spec, settings),
            },
        },
    }
    if spec.time_zone:
        cron_spec["timeZone"] = spec.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": names.cronjob,
            "namespace": spec.namespace,
            "labels": labels,
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": cron_spec,
    }


# Labels that tell a continuous runner's Pods from the client's Jobs' Pods.
COMPONENT_LABEL = "app.kubernetes.io/component"
CONTINUOUS_COMPONENT = "continuous-runner"


def build_continuous_deployment(
    spec: PipelineSpec, settings: Settings, owner: Mapping[str, str]
) -> dict[str, Any]:
    """The Deployment that keeps a continuous-mode pipeline's runner up (one replica;
    none while suspended), owned by the ClientPipeline."""
    names = spec.names
    labels = {LABEL_CLIENT: spec.client_id, LABEL_MANAGED_BY: MANAGER}
    selector = {**labels, COMPONENT_LABEL: CONTINUOUS_COMPONENT}
    pod = build_runner_pod(spec, settings, continuous=True)
    pod["metadata"]["labels"] = selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.continuous_runner,
            "namespace": spec.namespace,
            "labels": selector,
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "replicas": 0 if spec.suspend else 1,
            # Never two runners of one client, not even during a rollout: the old
            # one stops (after its batch) before the new one starts. The client's
            # lock refuses a second run anyway; this keeps it from trying.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": pod,
        },
    }


def is_subset(desired: Any, live: Any) -> bool:
    """True when every value in `desired` is present and equal in `live`.

    Live objects carry server defaults (dnsPolicy, terminationMessagePath, ...); only
    what the operator sets is compared. Lists compare element by element.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and is_subset(v, live[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)
