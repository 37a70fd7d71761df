"""Prometheus metrics: reconciles, durations, errors and writes per part."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def record_runs(pipeline: Mapping[str, Any]) -> None:
    """The run gauges of one ClientPipeline, from its status."""
    meta, status = pipeline["metadata"], pipeline.get("status") or {}
    labels = (str(meta.get("namespace")), str(meta.get("name")))
    FAILED_IN_A_ROW.labels(*labels).set(int(status.get("failedRunsInARow") or 0))
    finished = (status.get("lastSuccessfulRun") or {}).get("completionTime")
    if finished:
        when = dt.datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
        LAST_SUCCESS.labels(*labels).set(when.timestamp())


def forget(namespace: str, client: str) -> None:
    """A deleted pipeline's gauges go with it."""
    for gauge in (LAST_SUCCESS, FAILED_IN_A_ROW):
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(namespace, client)


def observe(part: str, seconds: float, ok: bool, writes: list[str]) -> None:
    DURATION.labels(part).observe(seconds)
    RECONCILES.labels(part, "ok" if ok else "error").inc()
    if writes:
        WRITES.labels(part).inc(len(writes))


def serve(port: int) -> None:
    start_http_server(port)
