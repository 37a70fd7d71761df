"""Prometheus metrics: reconciles, durations, errors and writes per part."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "clientpipelines_reconciles_total", "Part reconciles, by outcome", ["part", "result"]
)
DURATION = Histogram(
    "clientpipelines_reconcile_duration_seconds", "Time to reconcile one part", ["part"]
)
WRITES = Counter(
    "clientpipelines_writes_total", "Writes made to an external system or Kubernetes", ["part"]
)


def observe(part: str, seconds: float, ok: bool, writes: list[str]) -> None:
    DURATION.labels(part).observe(seconds)
    RECONCILES.labels(part, "ok" if ok else "error").inc()
    if writes:
        WRITES.labels(part).inc(len(writes))


def serve(port: int) -> None:
    start_http_server(port)
