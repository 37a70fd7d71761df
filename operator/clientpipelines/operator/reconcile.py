"""One reconcile of one ClientPipeline, and its cleanup on delete.

Level-based: every call reads all parts' live state and repairs what differs, so
it serves create, update, resume and the drift timer alike. What it returns is
the status to record and the Events to emit; the kopf handlers apply them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.operator import conditions, desired, metrics, parts
from clientpipelines.operator.conditions import Condition
from clientpipelines.operator.parts import Credentials, PartResult, SecretMissing, Systems

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retry_after: float | None = None
    ready: bool = False
    backoff: bool = False  # some part failed: retries back off exponentially


# Converging parts are polled at their own pace this many times before backing off.
CONVERGING_POLLS = 30


def retry_delay(base: float, retry: int, *, backoff: bool) -> float:
    """Seconds until the next reconcile of a pipeline that is not Ready yet.

    Errors back off exponentially (a service that is down is not hammered); parts
    that are merely converging (a connector starting) are polled at their own pace,
    so a burst of new pipelines is not slowed down by growing delays.
    """
    steps = retry if backoff else retry - CONVERGING_POLLS
    if steps <= 0:
        return base
    return float(min(base * 2 ** min(steps, 8), 300))


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _timed(part: str, run: Any) -> PartResult:
    started = time.monotonic()
    result: PartResult = run()
    metrics.observe(part, time.monotonic() - started, result.condition.status, result.writes)
    return result


def reconcile(
    systems: Systems,
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    drift: bool = False,
) -> Outcome:
    try:
        pipeline = desired.parse_spec(name, namespace, spec)
    except desired.InvalidSpec as exc:
        cond = Condition("Ready", False, "InvalidSpec", str(exc))
        new = conditions.merge(status.get("conditions"), [cond], generation=generation, now=_now())
        return Outcome(
            {"observedGeneration": generation, "conditions": new},
            events=[("Warning", "InvalidSpec", str(exc))],
        )

    creds: Credentials | None
    secret_problem: str | None = None
    try:
        creds = parts.read_credentials(systems.api, pipeline)
    except (SecretMissing, ServiceUnavailable) as exc:
        creds, secret_problem = None, str(exc)

    owner = {"name": name, "uid": uid}
    results = [
        _timed(
            "catalogs",
            lambda: parts.guarded(
                "CatalogsReady",
                lambda: parts.ensure_catalogs(systems, pipeline, creds, status.get("catalogs")),
            ),
        ),
        _timed(
            "connector",
            lambda: parts.guarded(
                "ConnectorReady",
                lambda: parts.ensure_connector(systems, pipeline, creds, status.get("connector")),
            ),
        ),
        _timed(
            "branch",
            lambda: parts.guarded(
                "BranchesReady",
                lambda: parts.ensure_branch(systems, pipeline, status.get("branch")),
            ),
        ),
        _timed(
            "cronjob",
            lambda: parts.guarded(
                "ScheduleReady", lambda: parts.ensure_cronjob(systems, pipeline, owner)
            ),
        ),
    ]
    part_conditions = [r.condition for r in results]
    ready = conditions.ready(part_conditions)
    if secret_problem and not ready.status:
        log.info("%s/%s: %s", namespace, name, secret_problem)
    new_conditions = conditions.merge(
        status.get("conditions"), [ready, *part_conditions], generation=generation, now=_now()
    )
    new_status: dict[str, Any] = {"observedGeneration": generation, "conditions": new_conditions}
    for r in results:
        new_status.update(r.status)

    events: list[tuple[str, str, str]] = []
    for r in results:
        for write in r.writes:
            reason = "Repaired" if drift or write.startswith("repaired") else "Reconciled"
            events.append(("Normal", reason, write))
    for flipped in conditions.transitions(status.get("conditions"), new_conditions):
        kind = "Normal" if flipped["status"] == "True" else "Warning"
        events.append(
            (
                kind,
                flipped["reason"],
                f"{flipped['type']}={flipped['status']}: {flipped['message']}",
            )
        )

    # Unavailable services and converging parts are looked at again soon; a part
    # that is fine but idle waits for the drift timer.
    retries = [r.requeue for r in results if r.requeue is not None]
    backoff = any(r.failed for r in results)
    if backoff or (not ready.status and not retries):
        # A failing service is retried from 15 s up, even beside a converging part.
        retries, backoff = [max([15.0, *retries])], True
    return Outcome(
        new_status, events, min(retries) if retries else None, ready.status, backoff=backoff
    )


# -- deletion ---------------------------------------------------------------------------------


class CleanupIncomplete(Exception):
    """Something outside Kubernetes could not be removed yet; keep the finalizer."""


def cleanup(
    systems: Systems,
    *,
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
) -> list[str]:
    """Remove what lives outside Kubernetes (deletionPolicy Delete). Returns what was done.

    Each step is idempotent, so a retry after a partial failure redoes nothing twice.
    The CronJob goes with the ClientPipeline through its owner reference.
    """
    pipeline = desired.parse_spec(name, namespace, spec)
    names = pipeline.names
    done: list[str] = []
    problems: list[str] = []

    def step(what: str, run: Any) -> bool:
        """Run one removal; True when nothing of it is left (done now or before)."""
        try:
            result = run()
        except (ServiceUnavailable, ServiceError, SecretMissing) as exc:
            problems.append(f"{what}: {exc}")
            return False
        if result:
            done.append(what if result is True else f"{what} {', '.join(result)}")
        return True

    connector_gone = step(
        f"deleted connector {names.connector} and its offsets",
        lambda: systems.connect.remove(names.connector),
    )
    try:
        creds: Credentials | None = parts.read_credentials(systems.api, pipeline)
    except (SecretMissing, ServiceUnavailable) as exc:
        creds = None
        problems.append(
            f"cannot drop the replication slot and publication: {exc}; recreate the Secret, "
            "or set deletionPolicy: Retain to leave them"
        )
    if creds is not None:
        source = systems.source(pipeline, creds)
        step(
            f"dropped replication slot {names.replication_slot}",
            lambda: source.drop_slot(names.replication_slot),
        )
        step(
            f"dropped publication {names.publication}",
            lambda: source.drop_publication(names.publication),
        )
    for catalog in desired.owned_catalog_names(pipeline.client_id):
        step(f"dropped catalog {catalog}", lambda c=catalog: systems.trino.drop_catalog(c))

    def drop_branch() -> bool:
        ref = systems.nessie.get_reference(names.staging_branch)
        if ref is None:
            return False
        systems.nessie.delete_branch(ref)
        return True

    step(f"deleted branch {names.staging_branch}", drop_branch)
    # Topics last: until the connector and the kafka catalog are gone, a producer or
    # a metadata lookup could auto-create them again.
    if connector_gone:
        step("deleted topics", lambda: systems.kafka.delete_matching(names.owns_topic))
    else:
        problems.append(f"topics {names.topic_prefix}.* kept until the connector is gone")
    if problems:
        raise CleanupIncomplete("; ".join(problems))
    return done


def retained(spec: Mapping[str, Any], name: str, namespace: str) -> str:
    pipeline = desired.parse_spec(name, namespace, spec)
    n = pipeline.names
    return (
        f"deletionPolicy Retain: kept connector {n.connector}, replication slot and publication "
        f"{n.replication_slot}, topics {n.topic_prefix}.*, catalogs "
        f"{', '.join(desired.owned_catalog_names(pipeline.client_id))} and branch "
        f"{n.staging_branch}"
    )
