"""Run the operator: `python -m clientpipelines.operator`."""

from __future__ import annotations

import os
import secrets

import kopf

from clientpipelines.operator import (
    handlers,  # noqa: F401 - registers the handlers
    memory,
)
from clientpipelines.operator.settings import Settings


def main() -> None:
    # Before kopf starts its worker threads: each would otherwise get an arena.
    memory.limit_arenas()
    memory.start_trimming()
    settings = Settings.from_env()
    # LOG_FORMAT=json gives one JSON object per line (with the object's namespace
    # and name), for log shippers; the default is kopf's plain format.
    json_logs = os.environ.get("LOG_FORMAT") == "json"
    log_format = kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    kopf.configure(
        verbose=os.environ.get("OPERATOR_DEBUG") == "1",
        log_format=log_format,
        # Plain lines start with [namespace/name] of the object they are about.
        log_prefix=not json_logs,
        log_refkey="object" if json_logs else None,
    )
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=settings.peering is None,
        peering_name=settings.peering,
        # Replicas with equal priorities would all pause; a random one per process
        # makes exactly one active, and a standby takes over when it disappears.
        priority=secrets.randbelow(1_000_000) if settings.peering else None,
        liveness_endpoint=os.environ.get("LIVENESS_ENDPOINT", "http://0.0.0.0:8080/healthz"),
    )


if __name__ == "__main__":
    main()
