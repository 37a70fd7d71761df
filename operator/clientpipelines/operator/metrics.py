"""Prometheus metrics: reconciles, durations, errors and writes per part; and per
pipeline (labelled namespace, client), what its status says, for alerts and dashboards.

Freshness is exported as a timestamp (`..._last_successful_run_timestamp_seconds`),
the Prometheus way: `time() - metric` is the age at query time, exact between scrapes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from clientpipelines.clients.postgres import SlotState

RECONCILES = Counter(
    "clientpipelines_reconciles_total", "Part reconciles, by outcome", ["part", "result"]
)
DURATION = Histogram(
    "clientpipelines_reconcile_duration_seconds", "Time to reconcile one part", ["part"]
)
WRITES = Counter(
    "clientpipelines_writes_total", "Writes made to an external system or Kubernetes", ["part"]
)


NOTIFICATIONS = Counter(
    "clientpipelines_notifications_total", "Failed-run notifications to the webhook", ["result"]
)
LAST_SUCCESS = Gauge(
    "clientpipelines_last_successful_run_timestamp_seconds",
    "When the pipeline's last successful run finished (time() minus it: freshness)",
    ["namespace", "client"],
)
FAILED_IN_A_ROW = Gauge(
    "clientpipelines_failed_runs_in_a_row",
    "Pipeline runs that failed since the last successful one",
    ["namespace", "client"],
)


LAST_RUN_DURATION = Gauge(
    "clientpipelines_last_run_duration_seconds",
    "How long the pipeline's last finished run took",
    ["namespace", "client"],
)
LAST_RUN_CHANGED = Gauge(
    "clientpipelines_last_run_changed_keys",
    "Rows (keys) the last published CDC run inserted, updated or deleted",
    ["namespace", "client"],
)
CONDITION = Gauge(
    "clientpipelines_condition",
    "1 when the pipeline's condition is True, else 0 (Ready, each part, LastRunSucceeded, "
    "ReplicationSlotHealthy)",
    ["namespace", "client", "condition"],
)
CONNECTOR_STATE = Gauge(
    "clientpipelines_connector_state",
    "1 for the Kafka Connect state the pipeline's connector is in, 0 for the others",
    ["namespace", "client", "state"],
)
CONNECTOR_STATES = ("RUNNING", "PAUSED", "FAILED", "UNASSIGNED", "RESTARTING", "STOPPED")
TASK_RESTARTS = Gauge(
    "clientpipelines_connector_task_restarts",
    "Restarts of the connector's failed tasks since it last ran (the operator gives up at 5)",
    ["namespace", "client"],
)
SLOT_RETAINED = Gauge(
    "clientpipelines_replication_slot_retained_wal_bytes",
    "WAL the pipeline's replication slot makes the client's Postgres keep",
    ["namespace", "client"],
)
SLOT_LIMIT = Gauge(
    "clientpipelines_replication_slot_retained_wal_limit_bytes",
    "The retained WAL above which ReplicationSlotHealthy turns False",
    ["namespace", "client"],
)
SLOT_ACTIVE = Gauge(
    "clientpipelines_replication_slot_active",
    "1 when a connector holds the pipeline's replication slot",
    ["namespace", "client"],
)
_PER_PIPELINE = (
    LAST_SUCCESS,
    FAILED_IN_A_ROW,
    LAST_RUN_DURATION,
    LAST_RUN_CHANGED,
    TASK_RESTARTS,
    SLOT_RETAINED,
    SLOT_LIMIT,
    SLOT_ACTIVE,
)


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def record_runs(pipeline: Mapping[str, Any]) -> None:
    """The run gauges of one ClientPipeline, from its status."""
    meta, status = pipeline["metadata"], pipeline.get("status") or {}
    labels = (str(meta.get("namespace")), str(meta.get("name")))
    FAILED_IN_A_ROW.labels(*labels).set(int(status.get("failedRunsInARow") or 0))
    finished = _timestamp((status.get("lastSuccessfulRun") or {}).get("completionTime"))
    if finished is not None:
        LAST_SUCCESS.labels(*labels).set(finished)
    run = status.get("lastRun") or {}
    started, ended = _timestamp(run.get("startTime")), _timestamp(run.get("completionTime"))
    if started is not None and ended is not None:
        LAST_RUN_DURATION.labels(*labels).set(ended - started)
    if isinstance(run.get("changedKeys"), int):
        LAST_RUN_CHANGED.labels(*labels).set(run["changedKeys"])


def record_status(pipeline: Mapping[str, Any]) -> None:
    """Every per-pipeline gauge the status feeds: conditions, connector, runs, slot."""
    meta, status = pipeline["metadata"], pipeline.get("status") or {}
    labels = (str(meta.get("namespace")), str(meta.get("name")))
    for cond in status.get("conditions") or []:
        CONDITION.labels(*labels, str(cond.get("type"))).set(
            1 if cond.get("status") == "True" else 0
        )
    connector = status.get("connector")
    if connector:
        for state in CONNECTOR_STATES:
            CONNECTOR_STATE.labels(*labels, state).set(1 if connector.get("state") == state else 0)
        TASK_RESTARTS.labels(*labels).set(int(connector.get("restarts") or 0))
    else:
        _remove(CONNECTOR_STATE, *[(*labels, st) for st in CONNECTOR_STATES])
        _remove(TASK_RESTARTS, labels)
    slot = status.get("replicationSlot")
    if not slot:
        for gauge in (SLOT_RETAINED, SLOT_LIMIT, SLOT_ACTIVE):
            _remove(gauge, labels)
    record_runs(pipeline)


def record_slot(namespace: str, client: str, state: SlotState | None, limit: int) -> None:
    """The slot's exact figures, as Postgres reported them just now."""
    labels = (namespace, client)
    SLOT_LIMIT.labels(*labels).set(limit)
    if state is None:
        _remove(SLOT_RETAINED, labels)
        SLOT_ACTIVE.labels(*labels).set(0)
        return
    SLOT_RETAINED.labels(*labels).set(state.retained_bytes)
    SLOT_ACTIVE.labels(*labels).set(1 if state.active else 0)


def _remove(gauge: Gauge, *series: tuple[str, ...]) -> None:
    """Remove each series (its full label values) that exists."""
    for values in series:
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(*values)


def forget(namespace: str, client: str) -> None:
    """A deleted pipeline's gauges go with it."""
    labels = (namespace, client)
    for gauge in _PER_PIPELINE:
        _remove(gauge, labels)
    _remove(CONNECTOR_STATE, *[(*labels, st) for st in CONNECTOR_STATES])
    # Conditions: whichever types were set.
    conds = {
        sample.labels["condition"]
        for metric in CONDITION.collect()
        for sample in metric.samples
        if (sample.labels["namespace"], sample.labels["client"]) == labels
    }
    _remove(CONDITION, *[(*labels, c) for c in conds])


def observe(part: str, seconds: float, ok: bool, writes: list[str]) -> None:
    DURATION.labels(part).observe(seconds)
    RECONCILES.labels(part, "ok" if ok else "error").inc()
    if writes:
        WRITES.labels(part).inc(len(writes))


def serve(port: int) -> None:
    start_http_server(port)
