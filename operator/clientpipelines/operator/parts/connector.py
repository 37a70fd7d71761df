"""The client's CDC: the Debezium connector, its offsets, the replication slot and
publication on the client's Postgres, and the Kafka topics the connector writes.

In full-reload mode none of it should exist: ensure removes it with the same
`remove` that deletion uses, so a later switch back to cdc starts from a fresh
snapshot instead of stale offsets.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from clientpipelines.clients.errors import ServiceUnavailable
from clientpipelines.clients.kafka_connect import ConnectorStatus, KafkaConnectClient, TaskState
from clientpipelines.naming import LAKE_CATALOG
from clientpipelines.operator import desired, preflight
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal
from clientpipelines.operator.systems import Credentials
from clientpipelines.trino_access import write_private

# Failed connector tasks are restarted with exponential backoff, a bounded number
# of times; after that the condition stays False for a person to look at.
MAX_TASK_RESTARTS = 5
RESTART_BACKOFF_SECONDS = 30.0
RESTART_BACKOFF_MAX_SECONDS = 600.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure(ctx: PartContext) -> PartResult:
    if not ctx.spec.cdc:
        return _ensure_absent(ctx)
    spec, connect = ctx.spec, ctx.systems.connect
    name = spec.names.connector
    recorded = ctx.status.get("connector") or {}
    creds = ctx.need_creds("the connector")
    want, credentials_file, writes = _wanted_config(ctx, creds)
    live = connect.get_config(name)
    topics = desired.build_change_topics(spec)
    captured = _captured(recorded, live)
    backfill = _pending_backfill(recorded, captured, spec.tables, spec.snapshot_mode)
    if desired.connector_config_differs(want, live):
        # Before the tables go into the publication: a problem here would otherwise
        # break the client's own writes (operator/preflight.py).
        source = ctx.systems.source(spec, creds)
        problems = preflight.source_problems(
            spec.schema, list(spec.tables), source.table_identities(spec.schema, list(spec.tables))
        )
        if problems:
            return PartResult(False, "SourceNotReady", "; ".join(problems), failed=True)
    # Checked once per table list (and whenever the config is written), not on every
    # drift check: the broker is asked only when something could be missing.
    if sorted(topics) != recorded.get("topics") or desired.connector_config_differs(want, live):
        writes += _ensure_topics(ctx, topics)
    config_written = desired.connector_config_differs(want, live)
    if config_written:
        writes += _write_config(
            ctx, want, live, captured, repaired=recorded.get("state") is not None
        )

    status = connect.status(name)
    if writes:
        # A new or reconfigured connector starts within a second or so; waiting for
        # it here, briefly, spares a whole requeue round trip.
        status = _await_running(connect, name, status, timeout=3.0)
    restarts = int(recorded.get("restarts", 0))
    last_restart: str | None = recorded.get("lastRestartTime")
    if status is None:
        return PartResult(
            False,
            "ConnectorStarting",
            "connector not yet listed",
            status={
                "connector": {
                    "name": name,
                    "state": "UNASSIGNED",
                    "tasks": [],
                    "restarts": restarts,
                }
            },
            writes=writes,
            requeue=2,
        )
    _pause_or_resume(connect, name, spec.suspend, status.state, writes)

    result: PartResult
    failed = status.failed_tasks or ([] if status.state != "FAILED" else status.tasks)
    if failed or status.state == "FAILED":
        result, restarts, last_restart = _restart_with_backoff(
            connect, name, failed, restarts, last_restart, writes
        )
    elif spec.suspend:
        result = PartResult(True, "Paused", "suspended by spec.transform.suspend")
    elif (
        status.state == "RUNNING"
        and status.tasks
        and all(t.state == "RUNNING" for t in status.tasks)
    ):
        result = PartResult(True, "Running", f"{name} is running")
        restarts, last_restart = 0, None
    else:
        result = PartResult(
            False,
            "ConnectorStarting",
            f"connector {status.state}, tasks {[t.state for t in status.tasks]}",
            requeue=2,
        )
    if backfill and result.ready and not spec.suspend:
        result, backfill = _ask_backfill(ctx, backfill, config_written, result, writes)
    connector_status: dict[str, Any] = {
        "name": name,
        "state": status.state,
        "tasks": [{"id": t.id, "state": t.state} for t in status.tasks],
        "restarts": restarts,
        "topics": sorted(topics),
        # What it captures, and the tables added since whose backfill is still to ask.
        "tables": sorted(spec.tables),
        "backfillPending": backfill,
    }
    if last_restart:
        connector_status["lastRestartTime"] = last_restart
    if credentials_file and status.state == "RUNNING":
        # The connector runs on this login: files of earlier Secret versions go.
        _delete_logins(ctx, keep=credentials_file)
    result.status = {"connector": connector_status}
    result.writes = writes
    return result


def _wanted_config(
    ctx: PartContext, creds: Credentials
) -> tuple[dict[str, str], str | None, list[str]]:
    """The connector's config, and where its login file is (written if it changed)."""
    spec, settings = ctx.spec, ctx.systems.settings
    credentials_file, writes = None, []
    if settings.connect_credentials_dir:
        credentials_file, text = desired.connector_credentials_file(
            spec, settings.connect_credentials_dir, creds.username, creds.password, creds.version
        )
        if _write_private(Path(credentials_file), text):
            writes.append(f"wrote {Path(credentials_file).name} (the connector's login)")
    want = desired.build_connector_config(
        spec,
        creds.username,
        creds.password,
        settings.kafka_bootstrap,
        credentials_file=credentials_file,
    )
    return want, credentials_file, writes


def _write_private(path: Path, text: str) -> bool:
    try:
        return write_private(path, text)
    except OSError as exc:
        raise ServiceUnavailable("kafka-connect", f"writing the connector's login: {exc}") from exc


def _delete_logins(ctx: PartContext, keep: str | None = None) -> bool:
    """Delete the connector's login files (but `keep`); True if one was there (a
    removal step's "done": a full-reload pipeline's drift check runs this step every
    time, and nothing deleted must not count, or show, as a write)."""
    folder = ctx.systems.settings.connect_credentials_dir
    if not folder:
        return False
    deleted = False
    try:
        for path in Path(folder).glob(f"{ctx.spec.names.connector}.*.properties"):
            if str(path) != keep and path.exists():
                path.unlink(missing_ok=True)
                deleted = True
    except OSError as exc:
        raise ServiceUnavailable("kafka-connect", f"deleting the connector's login: {exc}") from exc
    return deleted


def _write_config(
    ctx: PartContext,
    want: dict[str, str],
    live: dict[str, str] | None,
    captured: list[str] | None,
    *,
    repaired: bool,
) -> list[str]:
    spec, name = ctx.spec, ctx.spec.names.connector
    ctx.systems.connect.put_config(name, want)
    writes = [
        f"stopped capturing {spec.schema}.{table}: {LAKE_CATALOG}."
        f"{spec.names.lake_schema}.{table} keeps the data published so far"
        for table in sorted(set(captured or ()) - set(spec.tables))
    ]
    if live is None:
        writes.append(f"{'repaired' if repaired else 'created'} connector {name}")
    else:
        writes.append(f"updated connector {name} ({', '.join(desired.changed_keys(want, live))})")
    return writes


def _ensure_topics(ctx: PartContext, topics: dict[str, dict[str, str]]) -> list[str]:
    """The change topics of tables without an event yet, and the signal topic."""
    kafka, names = ctx.systems.kafka, ctx.spec.names
    made = [f"created topic {t} (its table has no change yet)" for t in kafka.ensure_topics(topics)]
    signals = {names.signal_topic: desired.SIGNAL_TOPIC_CONFIG}
    made += [
        f"created topic {t} (the connector's signals)"
        for t in kafka.ensure_topics(signals, partitions=1)
    ]
    return made


def _ask_backfill(
    ctx: PartContext,
    backfill: list[str],
    config_written: bool,
    running: PartResult,
    writes: list[str],
) -> tuple[PartResult, list[str]]:
    """Ask the running connector for the incremental snapshot of the added tables.

    Only in a pass after the one that wrote the new table list, once Kafka Connect
    has given every task that list: a task of the old config would read the signal,
    skip tables it does not capture, and the signal would be spent. At least once:
    a crash between the send and the status write sends it again, and the tables
    are read twice (harmless: a read is an upsert of the row as it is)."""
    spec, kafka = ctx.spec, ctx.systems.kafka
    include = {f"{spec.schema}.{t}" for t in backfill}
    tasks = ctx.systems.connect.task_configs(spec.names.connector)
    given = bool(tasks) and all(
        include <= set(t.get("table.include.list", "").split(",")) for t in tasks
    )
    if config_written or not given:
        listed = ", ".join(backfill)
        return PartResult(
            False, "BackfillPending", f"backfill of {listed} not asked yet", requeue=3
        ), backfill
    # The topic may have gone (Kafka rebuilt): a broker's auto-created one could have
    # several partitions, and Debezium reads signals from partition 0 only.
    kafka.ensure_topics({spec.names.signal_topic: desired.SIGNAL_TOPIC_CONFIG}, partitions=1)
    kafka.send(*desired.build_snapshot_signal(spec, backfill), partition=0)
    writes.append(
        f"asked {spec.names.connector} to backfill "
        f"{', '.join(f'{spec.schema}.{t}' for t in backfill)}"
        " (an incremental snapshot: the next run publishes their rows)"
    )
    return running, []


def _captured(recorded: dict[str, Any], live: dict[str, str] | None) -> list[str] | None:
    """The tables the connector captured before this pass: as recorded, else (a status
    from before tables were recorded) its live table list; None for a new connector."""
    listed = None
    if live is not None:
        include = live.get("table.include.list", "")
        listed = [t.split(".", 1)[1] for t in include.split(",") if "." in t]
    if "tables" in recorded:
        # A table taken out of the live connector by hand is not captured either:
        # when the config is repaired, it is backfilled like an added one.
        return [t for t in recorded["tables"] if listed is None or t in listed]
    return listed


def _pending_backfill(
    recorded: dict[str, Any],
    captured: list[str] | None,
    tables: tuple[str, ...] | list[str],
    snapshot_mode: str,
) -> list[str]:
    """Tables whose existing rows still need an incremental snapshot: those added to a
    connector that was already capturing others (a new connector's initial snapshot
    reads every table), plus those still pending from an earlier pass; none when the
    spec asks for no snapshot of existing rows, or the connector does not stream."""
    if captured is None or snapshot_mode in ("no_data", "initial_only"):
        # no_data: existing rows are not wanted; initial_only: the connector stops
        # after its first snapshot and would never act on the request.
        return []
    pending = set(recorded.get("backfillPending") or ()) | (set(tables) - set(captured))
    return sorted(pending & set(tables))


def _ensure_absent(ctx: PartContext) -> PartResult:
    removal = Removal()
    remove(ctx, removal)
    writes = [f"{done} (mode {ctx.spec.mode})" for done in removal.done]
    if removal.problems:
        return PartResult(
            False, "RemovalIncomplete", "; ".join(removal.problems), writes=writes, failed=True
        )
    return PartResult(
        True,
        "NotApplicable",
        "full-reload mode reads no WAL",
        status={"connector": None},
        writes=writes,
    )


def remove(ctx: PartContext, removal: Removal) -> None:
    """Remove the connector with its offsets, the slot and publication, then the topics.

    The offsets go too: Kafka Connect keeps them after a connector is deleted, and a
    connector created again under the same name would resume from them on a new
    slot and skip its snapshot. A slot nobody reads makes the client's WAL grow
    without bound. Topics last: until the connector (and the kafka catalog, removed
    before this part) is gone, a producer or a metadata lookup could create them again.
    """
    systems, spec, names = ctx.systems, ctx.spec, ctx.spec.names
    connector_gone = removal.step(
        f"deleted connector {names.connector} and its offsets",
        lambda: systems.connect.remove(names.connector),
    )
    if ctx.creds is not None:
        source = systems.source(spec, ctx.creds)
        removal.step(
            f"dropped replication slot {names.replication_slot}",
            lambda: source.drop_slot(names.replication_slot),
        )
        removal.step(
            f"dropped publication {names.publication}",
            lambda: source.drop_publication(names.publication),
        )
    elif ctx.status.get("connector"):
        removal.problem(
            f"cannot drop replication slot and publication {names.replication_slot}: "
            f"{ctx.creds_problem or 'no credentials'}; recreate the Secret, "
            "or set deletionPolicy: Retain to leave them"
        )
    # else no connector was ever recorded: no slot or publication of ours exists.
    if connector_gone:
        removal.step(f"deleted the login files of {names.connector}", lambda: _delete_logins(ctx))
        removal.step("deleted topics", lambda: systems.kafka.delete_matching(names.owns_topic))
    else:
        removal.problem(f"topics {names.topic_prefix}.* kept until the connector is gone")


def kept(ctx: PartContext) -> str:
    n = ctx.spec.names
    return (
        f"connector {n.connector}, replication slot and publication {n.replication_slot}, "
        f"topics {n.topic_prefix}.*"
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
) -> tuple[PartResult, int, str | None]:
    """Restart failed tasks, waiting 30 s, 60 s, ... between tries, at most MAX_TASK_RESTARTS."""
    trace = (failed[0].trace or "").strip().splitlines()[:1] if failed else []
    detail = trace[0][:300] if trace else "see the Kafka Connect worker log"
    if restarts >= MAX_TASK_RESTARTS:
        message = f"task failed after {restarts} restarts: {detail}"
        return PartResult(False, "ConnectorFailed", message), restarts, last_restart
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
    message = f"restart {restarts}/{MAX_TASK_RESTARTS}: {detail}"
    return (
        PartResult(False, "ConnectorRestarting", message, requeue=backoff),
        restarts,
        last_restart,
    )
