"""The `ensure_*` functions: read a part's live state, compare, write only on a difference.

Each returns a PartResult: the part's condition, the status fields it owns, and a
description of every write it made (for Events and metrics). Errors from a
service become a False condition with a reason; they never stop the other parts.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.clients.kafka import KafkaTopics
from clientpipelines.clients.kafka_connect import ConnectorStatus, KafkaConnectClient, TaskState
from clientpipelines.clients.nessie import NessieClient
from clientpipelines.clients.postgres import PostgresLogin, SourcePostgres
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import MAIN_BRANCH
from clientpipelines.operator import desired
from clientpipelines.operator.conditions import Condition
from clientpipelines.operator.desired import PipelineSpec
from clientpipelines.operator.settings import Settings

log = logging.getLogger(__name__)

# Failed connector tasks are restarted with exponential backoff, a bounded number
# of times; after that the condition stays False for a person to look at.
MAX_TASK_RESTARTS = 5
RESTART_BACKOFF_SECONDS = 30.0
RESTART_BACKOFF_MAX_SECONDS = 600.0


@dataclass
class PartResult:
    condition: Condition
    status: dict[str, Any] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    # Seconds until the part should be looked at again (it is converging), if any.
    requeue: float | None = None
    # The part hit an error (a service down or refusing): retries back off.
    failed: bool = False


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    version: str  # the Secret's resourceVersion: changes when it is rotated

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, version={self.version!r})"


class SecretMissing(Exception):
    """The credentials Secret (or one of its keys) is not there."""


@dataclass
class Systems:
    """One client per external system, built once from the settings."""

    settings: Settings
    connect: KafkaConnectClient
    kafka: KafkaTopics
    nessie: NessieClient
    trino: TrinoClient
    api: client.ApiClient

    @classmethod
    def from_settings(cls, settings: Settings, api: client.ApiClient) -> Systems:
        return cls(
            settings=settings,
            connect=KafkaConnectClient(settings.connect_url),
            kafka=KafkaTopics(settings.kafka_bootstrap),
            nessie=NessieClient(settings.nessie_url),
            trino=TrinoClient(settings.trino_host, settings.trino_port, user=settings.trino_user),
            api=api,
        )

    def source(self, spec: PipelineSpec, creds: Credentials) -> SourcePostgres:
        return SourcePostgres(
            PostgresLogin(
                host=spec.host,
                port=spec.port,
                database=spec.database,
                username=creds.username,
                password=creds.password,
                sslmode=spec.ssl_mode,
            )
        )


def _read_secret(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """One Secret as plain JSON, through the client's generic request path.

    Not CoreV1Api: that class imports the models of the whole core API, about 80 MB
    of the operator's memory (kubernetes 37), for this one read.
    """
    request = api.param_serialize(
        method="GET",
        resource_path="/api/v1/namespaces/{namespace}/secrets/{name}",
        path_params={"namespace": namespace, "name": name},
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()
    body: Any = api.response_deserialize(response, {"200": "object"}).data
    return dict(body)


def read_credentials(api: client.ApiClient, spec: PipelineSpec) -> Credentials:
    try:
        secret = _read_secret(api, spec.namespace, spec.secret.name)
    except ApiException as exc:
        if exc.status == 404:
            raise SecretMissing(
                f"Secret {spec.namespace}/{spec.secret.name} (credentialsSecretRef) not found"
            ) from exc
        raise ServiceUnavailable("kubernetes", f"reading the Secret: HTTP {exc.status}") from exc
    data = secret.get("data") or {}
    missing = [k for k in (spec.secret.username_key, spec.secret.password_key) if k not in data]
    if missing:
        raise SecretMissing(
            f"Secret {spec.namespace}/{spec.secret.name} lacks key(s) {', '.join(missing)}"
        )
    return Credentials(
        username=base64.b64decode(data[spec.secret.username_key]).decode(),
        password=base64.b64decode(data[spec.secret.password_key]).decode(),
        version=str((secret.get("metadata") or {}).get("resourceVersion", "")),
    )


def guarded(condition_type: str, run: Callable[[], PartResult]) -> PartResult:
    """Run one part; a service error becomes a False condition with a reason."""
    try:
        return run()
    except SecretMissing as exc:
        cond = Condition(condition_type, False, "SecretNotFound", str(exc))
        return PartResult(cond, requeue=30, failed=True)
    except Conflict as exc:
        # Lost a race (Kafka Connect answers 409 while its group rebalances, which
        # every new connector causes): not a failure, look again soon.
        cond = Condition(condition_type, False, _service(exc) + "Busy", str(exc))
        return PartResult(cond, requeue=2)
    except ServiceUnavailable as exc:
        cond = Condition(condition_type, False, _service(exc) + "Unavailable", str(exc))
        return PartResult(cond, failed=True)
    except ServiceError as exc:
        cond = Condition(condition_type, False, _service(exc) + "Error", str(exc))
        return PartResult(cond, failed=True)


def _service(exc: ServiceError) -> str:
    return "".join(w.capitalize() for w in exc.service.split("-"))


# -- Trino catalogs --------------------------------------------------------------------------


def ensure_catalogs(
    systems: Systems,
    spec: PipelineSpec,
    creds: Credentials | None,
    recorded: list[Mapping[str, Any]] | None,
) -> PartResult:
    """Create missing catalogs, recreate changed ones (there is no ALTER CATALOG), drop extras."""
    if not spec.cdc and creds is None:
        raise SecretMissing("full-reload needs the credentials Secret for the postgres catalog")
    wanted = desired.build_catalogs(
        spec,
        systems.settings,
        username=creds.username if creds else "",
        password=creds.password if creds else "",
        secret_version=creds.version if creds else "",
    )
    known = {str(c.get("name")): str(c.get("fingerprint")) for c in recorded or []}
    live = systems.trino.catalogs()
    writes = []
    for name, cat in sorted(wanted.items()):
        # Trino does not show a catalog's properties, so the fingerprint recorded in
        # status is what tells a changed catalog. One that exists without a record
        # (status lost to a crash between create and record) is adopted as it is.
        if name in live and known.get(name, cat.fingerprint) == cat.fingerprint:
            continue
        if name in live:
            systems.trino.drop_catalog(name)
            writes.append(f"recreated catalog {name} (settings changed)")
        elif name in known:
            writes.append(f"repaired catalog {name} (it had been dropped)")
        else:
            writes.append(f"created catalog {name}")
        systems.trino.create_catalog(name, cat.connector, cat.properties)
    for name in desired.owned_catalog_names(spec.client_id):
        if name not in wanted and name in live:
            systems.trino.drop_catalog(name)
            writes.append(f"dropped catalog {name} (not used in mode {spec.mode})")
    return PartResult(
        Condition("CatalogsReady", True, "CatalogsExist", ", ".join(sorted(wanted))),
        status={
            "catalogs": [
                {"name": n, "fingerprint": c.fingerprint} for n, c in sorted(wanted.items())
            ]
        },
        writes=writes,
    )


# -- Debezium connector ----------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_connector(
    systems: Systems,
    spec: PipelineSpec,
    creds: Credentials | None,
    recorded: Mapping[str, Any] | None,
) -> PartResult:
    names = spec.names
    connect = systems.connect
    if not spec.cdc:
        writes = []
        if connect.delete(names.connector):
            writes.append(f"deleted connector {names.connector} (mode {spec.mode})")
        if creds is not None:
            # A slot nobody reads makes the client's WAL grow without bound.
            source = systems.source(spec, creds)
            if source.drop_slot(names.replication_slot):
                writes.append(f"dropped replication slot {names.replication_slot}")
            if source.drop_publication(names.publication):
                writes.append(f"dropped publication {names.publication}")
        return PartResult(
            Condition("ConnectorReady", True, "NotApplicable", "full-reload mode reads no WAL"),
            status={"connector": None},
            writes=writes,
        )
    if creds is None:
        raise SecretMissing("the connector needs the credentials Secret")
    want = desired.build_connector_config(spec, creds.username, creds.password)
    live = connect.get_config(names.connector)
    writes = []
    if desired.connector_config_differs(want, live):
        connect.put_config(names.connector, want)
        if live is None:
            repaired = recorded is not None and recorded.get("state") is not None
            writes.append(f"{'repaired' if repaired else 'created'} connector {names.connector}")
        else:
            keys = ", ".join(desired.changed_keys(want, live))
            writes.append(f"updated connector {names.connector} ({keys})")

    status = connect.status(names.connector)
    if writes:
        # A new or reconfigured connector starts within a second or so; waiting for
        # it here, briefly, spares a whole requeue round trip.
        status = _await_running(connect, names.connector, status, timeout=3.0)
    restarts = int((recorded or {}).get("restarts", 0))
    last_restart: str | None = (recorded or {}).get("lastRestartTime")
    if status is None:
        return PartResult(
            Condition("ConnectorReady", False, "ConnectorStarting", "connector not yet listed"),
            status={
                "connector": {
                    "name": names.connector,
                    "state": "UNASSIGNED",
                    "tasks": [],
                    "restarts": restarts,
                }
            },
            writes=writes,
            requeue=2,
        )
    _pause_or_resume(connect, names.connector, spec.suspend, status.state, writes)

    condition: Condition
    requeue: float | None = None
    failed = status.failed_tasks or ([] if status.state != "FAILED" else status.tasks)
    if failed or status.state == "FAILED":
        condition, restarts, last_restart, requeue = _restart_with_backoff(
            connect, names.connector, failed, restarts, last_restart, writes
        )
    elif spec.suspend:
        condition = Condition(
            "ConnectorReady", True, "Paused", "suspended by spec.transform.suspend"
        )
    elif (
        status.state == "RUNNING"
        and status.tasks
        and all(t.state == "RUNNING" for t in status.tasks)
    ):
        condition = Condition("ConnectorReady", True, "Running", f"{names.connector} is running")
        restarts, last_restart = 0, None
    else:
        condition = Condition(
            "ConnectorReady",
            False,
            "ConnectorStarting",
            f"connector {status.state}, tasks {[t.state for t in status.tasks]}",
        )
        requeue = 2
    connector_status: dict[str, Any] = {
        "name": names.connector,
        "state": status.state,
        "tasks": [{"id": t.id, "state": t.state} for t in status.tasks],
        "restarts": restarts,
    }
    if last_restart:
        connector_status["lastRestartTime"] = last_restart
    return PartResult(
        condition, status={"connector": connector_status}, writes=writes, requeue=requeue
    )


def _await_running(
    connect: KafkaConnectClient, name: str, status: ConnectorStatus | None, *, timeout: float
) -> ConnectorStatus | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (
        status is not None
        and status.state in ("RUNNING", "FAILED", "PAUSED")
        and status.tasks
        and all(t.state != "UNASSIGNED" for t in status.tasks)
    ):
        time.sleep(0.1)
        status = connect.status(name)
    return status


def _pause_or_resume(
    connect: KafkaConnectClient, name: str, suspend: bool, state: str, writes: list[str]
) -> None:
    """`suspend` pauses the connector (the slot keeps its place); clearing it resumes."""
    if suspend and state != "PAUSED":
        connect.pause(name)
        writes.append(f"paused connector {name} (suspend)")
    elif not suspend and state == "PAUSED":
        connect.resume(name)
        writes.append(f"resumed connector {name}")


def _restart_with_backoff(
    connect: KafkaConnectClient,
    name: str,
    failed: list[TaskState],
    restarts: int,
    last_restart: str | None,
    writes: list[str],
) -> tuple[Condition, int, str | None, float | None]:
    """Restart failed tasks, waiting 30 s, 60 s, ... between tries, at most MAX_TASK_RESTARTS."""
    trace = (failed[0].trace or "").strip().splitlines()[:1] if failed else []
    detail = trace[0][:300] if trace else "see the Kafka Connect worker log"
    if restarts >= MAX_TASK_RESTARTS:
        return (
            Condition(
                "ConnectorReady",
                False,
                "ConnectorFailed",
                f"task failed after {restarts} restarts: {detail}",
            ),
            restarts,
            last_restart,
            None,
        )
    backoff = min(RESTART_BACKOFF_SECONDS * 2**restarts, RESTART_BACKOFF_MAX_SECONDS)
    since = (
        (_now() - dt.datetime.fromisoformat(last_restart)).total_seconds()
        if last_restart
        else backoff
    )
    if since >= backoff:
        connect.restart_failed(name)
        restarts += 1
        last_restart = _now().isoformat()
        writes.append(f"restarted failed tasks of {name} ({restarts})")
    return (
        Condition(
            "ConnectorReady",
            False,
            "ConnectorRestarting",
            f"restart {restarts}/{MAX_TASK_RESTARTS}: {detail}",
        ),
        restarts,
        last_restart,
        backoff,
    )


# -- Nessie branch -----------------------------------------------------------------------------


def ensure_branch(
    systems: Systems, spec: PipelineSpec, recorded: Mapping[str, Any] | None
) -> PartResult:
    """The staging branch exists (created from main). The operator never moves main."""
    name = spec.names.staging_branch
    writes = []
    if systems.nessie.get_reference(name) is None:
        main = systems.nessie.get_reference(MAIN_BRANCH)
        if main is None:
            raise ServiceError("nessie", f"branch {MAIN_BRANCH} does not exist")
        systems.nessie.create_branch(name, main)
        writes.append(f"{'repaired' if recorded else 'created'} branch {name} from {MAIN_BRANCH}")
    return PartResult(
        Condition("BranchesReady", True, "BranchExists", f"{name} exists"),
        status={"branch": {"name": name}},
        writes=writes,
    )


# -- CronJob -------------------------------------------------------------------------------------


def ensure_cronjob(systems: Systems, spec: PipelineSpec, owner: Mapping[str, str]) -> PartResult:
    batch = client.BatchV1Api(systems.api)
    want = desired.build_cronjob(spec, systems.settings, owner)
    name = want["metadata"]["name"]
    writes = []
    try:
        live = batch.read_namespaced_cron_job(name, spec.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise ServiceUnavailable("kubernetes", f"reading CronJob: HTTP {exc.status}") from exc
        live = None
    try:
        if live is None:
            batch.create_namespaced_cron_job(spec.namespace, want)  # type: ignore[arg-type]
            writes.append(f"created CronJob {name}")
        else:
            live_dict = systems.api.sanitize_for_serialization(live)
            owners = live_dict["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == owner["uid"] for o in owners):
                return PartResult(
                    Condition(
                        "ScheduleReady",
                        False,
                        "CronJobNotOwned",
                        f"CronJob {name} exists and is not owned by this ClientPipeline",
                    )
                )
            if not (
                desired.is_subset(want["spec"], live_dict["spec"])
                and desired.is_subset(
                    want["metadata"]["labels"], live_dict["metadata"].get("labels")
                )
            ):
                want["metadata"]["resourceVersion"] = live_dict["metadata"]["resourceVersion"]
                batch.replace_namespaced_cron_job(name, spec.namespace, want)  # type: ignore[arg-type]
                writes.append(f"updated CronJob {name}")
    except ApiException as exc:
        if exc.status in (400, 422):
            return PartResult(
                Condition("ScheduleReady", False, "InvalidSchedule", _api_message(exc))
            )
        raise ServiceUnavailable("kubernetes", f"writing CronJob: HTTP {exc.status}") from exc
    reason = "Suspended" if spec.suspend else "Scheduled"
    return PartResult(
        Condition("ScheduleReady", True, reason, f"{name}: {spec.schedule}"),
        status={"cronJob": name},
        writes=writes,
    )


def _api_message(exc: ApiException) -> str:
    import json  # noqa: PLC0415 - only on this error path

    try:
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    except ValueError:
        return str(exc.reason)
