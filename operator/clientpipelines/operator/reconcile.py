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
from clientpipelines.operator import conditions, metrics, policy, slothealth
from clientpipelines.operator.conditions import Condition
from clientpipelines.operator.parts import (
    PARTS,
    Part,
    PartContext,
    PartResult,
    cronjob,
    guarded,
    remove_all,
)
from clientpipelines.operator.policy import Claim, Refusal
from clientpipelines.operator.spec import InvalidSpec, PipelineSpec, parse_spec
from clientpipelines.operator.systems import (
    Credentials,
    CredentialsRefused,
    SecretMissing,
    Systems,
)

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


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ensure(part: Part, ctx: PartContext) -> tuple[Condition, PartResult]:
    """One part's ensure, guarded and timed; its condition under the part's own type."""
    started = time.monotonic()
    result = guarded(lambda: part.ensure(ctx))
    metrics.observe(part.name, time.monotonic() - started, result.ready, result.writes)
    return Condition(part.condition, result.ready, result.reason, result.message), result


def _context(
    systems: Systems, pipeline: PipelineSpec, *, status: Mapping[str, Any], owner: Mapping[str, str]
) -> PartContext:
    """The parts' context; CredentialsRefused when the Secret must not be used at all."""
    creds: Credentials | None = None
    problem: str | None = None
    try:
        creds = systems.read_credentials(pipeline)
    except (SecretMissing, ServiceUnavailable) as exc:
        problem = str(exc)
    return PartContext(systems, pipeline, creds, problem, status, owner)


def _refused(refusal: Refusal, status: Mapping[str, Any], generation: int) -> Outcome:
    """Nothing is touched: the conditions say why, an Event too; looked at again later
    (a Secret labelled, an owner deleted, a setting changed do not touch this object)."""
    refused = [Condition("Ready", False, refusal.reason, refusal.message)]
    if refusal.condition:
        refused.append(Condition(refusal.condition, False, refusal.reason, refusal.message))
    new = conditions.merge(status.get("conditions"), refused, generation=generation, now=now())
    events = [("Warning", refusal.reason, refusal.message)]
    if any(
        c.get("status") == "False" and c.get("reason") == refusal.reason
        for c in status.get("conditions") or []
    ):
        events = []  # said already
    return Outcome(
        {"observedGeneration": generation, "conditions": new}, events, 30.0, backoff=True
    )


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
    claims: tuple[Claim, ...] = (),
) -> Outcome:
    try:
        pipeline = parse_spec(name, namespace, spec)
    except InvalidSpec as exc:
        cond = Condition("Ready", False, "InvalidSpec", str(exc))
        new = conditions.merge(status.get("conditions"), [cond], generation=generation, now=now())
        return Outcome(
            {"observedGeneration": generation, "conditions": new},
            events=[("Warning", "InvalidSpec", str(exc))],
        )

    refusal = policy.refusal(pipeline, systems.settings, uid=uid, claims=claims)
    if refusal is not None:
        return _refused(refusal, status, generation)
    try:
        ctx = _context(systems, pipeline, status=status, owner={"name": name, "uid": uid})
    except CredentialsRefused as exc:
        part = "ConnectorReady" if pipeline.cdc else "CatalogsReady"
        return _refused(Refusal(exc.reason, str(exc), part), status, generation)
    ensured = [_ensure(part, ctx) for part in PARTS]
    part_conditions = [cond for cond, _ in ensured]
    results = [result for _, result in ensured]
    ready = conditions.ready(part_conditions)
    if ctx.creds_problem and not ready.status:
        log.info("%s/%s: %s", namespace, name, ctx.creds_problem)
    # Outside Ready: the slot's health says whether someone must act, not whether
    # the parts match the spec.
    slot = _slot_health(ctx)
    health = [slot[0]] if slot is not None else []
    new_conditions = conditions.merge(
        status.get("conditions"),
        [ready, *part_conditions, *health],
        generation=generation,
        now=now(),
    )
    new_status: dict[str, Any] = {"observedGeneration": generation, "conditions": new_conditions}
    for r in results:
        new_status.update(r.status)
    if slot is not None:
        new_status["replicationSlot"] = slot[1]

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


def _slot_health(ctx: PartContext) -> tuple[Condition, dict[str, Any] | None] | None:
    """The replication slot's condition and status; None when it cannot be read now
    (what was recorded stays: a Postgres that is down says nothing about the slot)."""
    if not ctx.spec.cdc:
        return slothealth.not_applicable()
    if ctx.creds is None:
        return None
    settings = ctx.systems.settings
    limit = ctx.spec.max_retained_wal or settings.max_retained_wal
    slot = ctx.spec.names.replication_slot
    try:
        state = ctx.systems.source(ctx.spec, ctx.creds).slot_state(slot)
    except ServiceError as exc:
        log.info("%s: replication slot not read: %s", ctx.spec.client_id, exc)
        return None
    metrics.record_slot(ctx.spec.namespace, ctx.spec.client_id, state, limit)
    return slothealth.assess(slot, state, limit=limit, recorded=ctx.status.get("replicationSlot"))


# -- deletion ---------------------------------------------------------------------------------


class CleanupIncomplete(Exception):
    """Something could not be removed yet; keep the finalizer and retry."""


def cleanup(
    systems: Systems,
    pipeline: PipelineSpec,
    *,
    uid: str,
    status: Mapping[str, Any],
    claims: tuple[Claim, ...] = (),
) -> list[str]:
    """Remove every part (deletionPolicy Delete). Returns what was done.

    Each step is idempotent, so a retry after a partial failure redoes nothing twice.
    A pipeline whose client id another one holds owns nothing: nothing is touched.
    """
    first = policy.holder(claims)
    if first is not None and first.uid != uid:
        return [
            f"nothing removed: client id {pipeline.client_id} belongs to "
            f"{first.namespace}/{first.name}"
        ]
    owner = {"name": pipeline.client_id, "uid": uid}
    try:
        ctx = _context(systems, pipeline, status=status, owner=owner)
    except CredentialsRefused as exc:
        # The Secret may not be used; what needs it (the slot) cannot be dropped.
        ctx = PartContext(systems, pipeline, None, str(exc), status, owner)
    removal = remove_all(ctx)
    if removal.problems:
        raise CleanupIncomplete("; ".join(removal.problems))
    return removal.done


def revoke(
    systems: Systems, pipeline: PipelineSpec, *, uid: str, claims: tuple[Claim, ...] = ()
) -> str | None:
    """deletionPolicy Retain keeps the data, not the access: the client's grants in
    Trino are withdrawn (its runs stop with the CronJob). None when there were none
    to withdraw (or the client id is another pipeline's)."""
    first = policy.holder(claims)
    rules = cronjob.rules_of(systems.settings)
    if rules is None or (first is not None and first.uid != uid):
        return None
    cronjob.withdraw(rules, pipeline.client_id)
    return f"withdrew the Trino grants of {pipeline.names.runner_principal(pipeline.namespace)}"


def retained(systems: Systems, pipeline: PipelineSpec) -> str:
    """What deletionPolicy Retain leaves outside Kubernetes, for the Event."""
    ctx = PartContext(systems, pipeline, None)
    kept = [part.kept(ctx) for part in PARTS if part.kept is not None]
    return f"deletionPolicy Retain: kept {'; '.join(kept)}"
