"""The client's runs: who they act as, the CronJob that starts them on the schedule,
and in continuous mode the Deployment that keeps one runner up.

Runs act as the client's own ServiceAccount (owned by the ClientPipeline); Trino
authenticates its tokens and, by the grant written here into its access rules,
lets that principal reach the client's catalogs and nothing else. The grant is
withdrawn once the runs have stopped.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.operator import desired
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal
from clientpipelines.operator.settings import Settings
from clientpipelines.trino_access import ClientGrant, RulesFile


def _rules(ctx: PartContext) -> RulesFile | None:
    return rules_of(ctx.systems.settings)


def rules_of(settings: Settings) -> RulesFile | None:
    """The Trino access rules the operator keeps (None: it keeps none)."""
    if not settings.trino_rules_file:
        return None
    return _rules_file(settings.trino_rules_file, tuple(settings.trino_admins), settings.trino_user)


@functools.cache
def _rules_file(path: str, admins: tuple[str, ...], operator: str) -> RulesFile:
    """One per file in a process: it remembers the file as it last rendered it."""
    return RulesFile(Path(path), admins=admins, operator=operator)


def _ensure_identity(ctx: PartContext) -> list[str]:
    """The runs' ServiceAccount and their grant in Trino; what was written."""
    spec, kube, writes = ctx.spec, ctx.systems.kubernetes(), []
    account = spec.names.runner_service_account
    live = kube.get_service_account(spec.namespace, account)
    if live is None:
        kube.create_service_account(desired.build_service_account(spec, ctx.owner))
        writes.append(f"created ServiceAccount {account}")
    elif not _owned(live, ctx):
        raise ServiceError(
            "kubernetes", f"ServiceAccount {account} exists and is not owned by this ClientPipeline"
        )
    rules = _rules(ctx)
    principal = spec.names.runner_principal(spec.namespace)
    try:
        grant = ClientGrant(spec.client_id, principal, readers=spec.readers)
        if rules is not None and rules.ensure(grant):
            writes.append(
                f"granted {principal} the catalogs of {spec.client_id} in Trino"
                + (f", and {', '.join(spec.readers)} reading its tables" if spec.readers else "")
            )
    except OSError as exc:
        raise ServiceUnavailable("trino", f"writing the access rules: {exc}") from exc
    return writes


def ensure(ctx: PartContext) -> PartResult:
    spec, kube = ctx.spec, ctx.systems.kubernetes()
    writes = _ensure_identity(ctx)
    # The continuous runner first: leaving continuous mode, the schedule stays
    # suspended until the old runner has finished its batch and is gone (a run
    # started meanwhile would only find the client's lock held).
    runner = _ensure_continuous(ctx)
    writes += runner.writes
    want = desired.build_cronjob(spec, ctx.systems.settings, ctx.owner)
    if runner.stopping:
        want["spec"]["suspend"] = True
    name = want["metadata"]["name"]
    live = kube.get_cronjob(spec.namespace, name)
    try:
        if live is None:
            kube.create_cronjob(want)
            writes.append(f"created CronJob {name}")
        else:
            if not _owned(live, ctx):
                return PartResult(
                    False,
                    "CronJobNotOwned",
                    f"CronJob {name} exists and is not owned by this ClientPipeline",
                    writes=writes,
                )
            if not (
                desired.is_subset(want["spec"], live["spec"])
                and desired.is_subset(want["metadata"]["labels"], live["metadata"].get("labels"))
            ):
                kube.replace_cronjob(want, live["metadata"]["resourceVersion"])
                writes.append(f"updated CronJob {name}")
    except ServiceError as exc:
        if exc.status in (400, 422):
            return PartResult(False, "InvalidSchedule", str(exc), writes=writes)
        raise
    deployment = spec.names.continuous_runner
    # Cleared (a merge patch removes a null) once the pipeline has no runner.
    status: dict[str, Any] = {"cronJob": name, "continuousRunner": None}
    if spec.continuous:
        status["continuousRunner"] = deployment
    if runner.problem is not None:
        reason, message = runner.problem
        return PartResult(False, reason, message, requeue=5, status=status, writes=writes)
    if spec.continuous:
        if spec.suspend:
            reason, message = "Suspended", f"{deployment}: scaled to zero; {name} suspended"
        else:
            reason = "Continuous"
            message = (
                f"{deployment}: a micro-batch every {spec.interval_seconds}s when there are"
                f" changes; {name} suspended (requested runs only)"
            )
        return PartResult(True, reason, message, status=status, writes=writes)
    reason = "Suspended" if spec.suspend else "Scheduled"
    return PartResult(True, reason, f"{name}: {spec.schedule}", status=status, writes=writes)


@dataclass
class _Runner:
    """The continuous runner's Deployment after ensure."""

    writes: list[str] = field(default_factory=list)
    # An old runner (scheduled mode again) is still finishing its batch.
    stopping: bool = False
    # Why the runner is not up as wanted: (reason, message).
    problem: tuple[str, str] | None = None


def _ensure_continuous(ctx: PartContext) -> _Runner:
    """Continuous mode's Deployment as the spec wants it (and its runner up), gone in
    scheduled mode."""
    spec, kube = ctx.spec, ctx.systems.kubernetes()
    name = spec.names.continuous_runner
    live = kube.get_deployment(spec.namespace, name)
    stopping = (
        f"{name}: the continuous runner finishes its batch and goes",
        "RunnerStopping",
    )
    if not spec.continuous:
        if live is None or not _owned(live, ctx):
            return _Runner()
        writes = []
        if not live["metadata"].get("deletionTimestamp"):
            kube.delete_deployment(spec.namespace, name)
            writes.append(f"deleted Deployment {name} (scheduled mode)")
        message = f"{stopping[0]}; {spec.names.cronjob} stays suspended until then"
        return _Runner(writes, stopping=True, problem=(stopping[1], message))
    if live is not None and not _owned(live, ctx):
        return _Runner(
            problem=(
                "DeploymentNotOwned",
                f"Deployment {name} exists and is not owned by this ClientPipeline",
            )
        )
    if live is not None and live["metadata"].get("deletionTimestamp"):
        # Back to continuous mode before the old runner was gone: it is made anew
        # once its runner has stopped and the garbage collector removed it.
        return _Runner(problem=(stopping[1], f"{stopping[0]}; then it starts again"))
    want = desired.build_continuous_deployment(spec, ctx.systems.settings, ctx.owner)
    if live is None:
        kube.create_deployment(want)
        return _Runner([f"created Deployment {name}"], problem=_starting(name))
    if not (
        desired.is_subset(want["spec"], live["spec"])
        and desired.is_subset(want["metadata"]["labels"], live["metadata"].get("labels"))
    ):
        kube.replace_deployment(want, live["metadata"]["resourceVersion"])
        return _Runner([f"updated Deployment {name}"], problem=_starting(name))
    return _Runner(problem=None if spec.suspend else _availability(name, live))


def _starting(name: str) -> tuple[str, str]:
    return "RunnerStarting", f"{name}: waiting for its runner to be up"


def _availability(name: str, live: dict[str, Any]) -> tuple[str, str] | None:
    """Why the runner is not up (None when it is): from the Deployment's own status,
    so a runner that crashes, cannot pull its image or was evicted shows here."""
    status = live.get("status") or {}
    if status.get("observedGeneration", 0) < live["metadata"].get("generation", 0):
        return _starting(name)
    available = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Available"), None
    )
    if available is None:
        return _starting(name)
    if available.get("status") != "True" or not status.get("availableReplicas"):
        detail = available.get("message") or available.get("reason") or "no runner available"
        return "RunnerUnavailable", f"{name}: {detail}"
    return None


# How long one removal pass waits for runs to stop before it retries later.
STOP_WAIT_SECONDS = 20.0


def _stop_continuous(ctx: PartContext) -> bool:
    """Delete a continuous runner's Deployment and wait until its Pod is gone (the
    runner finishes its batch first); False when there was none of ours."""
    spec, name = ctx.spec, ctx.spec.names.continuous_runner
    kube = ctx.systems.kubernetes()
    live = kube.get_deployment(spec.namespace, name)
    if live is None or not _owned(live, ctx):
        return False
    if not live["metadata"].get("deletionTimestamp"):
        kube.delete_deployment(spec.namespace, name)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while kube.get_deployment(spec.namespace, name) is not None:
        if time.monotonic() > deadline:
            raise ServiceUnavailable("kubernetes", f"waiting for the runner of {name} to stop")
        time.sleep(0.5)
    return True


def remove(ctx: PartContext, removal: Removal) -> None:
    """Delete the CronJob (and a continuous runner's Deployment) first, so no run is
    writing while the other parts go.

    Their owner references would remove them with the ClientPipeline anyway, but
    only after the finalizer: running Jobs would keep using the branch and catalogs.
    """
    spec, name = ctx.spec, ctx.spec.names.cronjob
    if not removal.step(
        f"deleted Deployment {spec.names.continuous_runner} and its runner",
        lambda: _stop_continuous(ctx),
    ):
        return  # its runner is still finishing a batch: its grants stay until it is gone

    def delete() -> bool:
        kube = ctx.systems.kubernetes()
        live = kube.get_cronjob(spec.namespace, name)
        if live is None or not _owned(live, ctx):
            return False  # gone, or someone else's CronJob of that name: not ours
        if not live["metadata"].get("deletionTimestamp"):
            kube.delete_cronjob(spec.namespace, name)
        # Foreground deletion: the CronJob stays until its Jobs and their Pods are
        # gone (a run gets its grace period to stop). Until then the other parts
        # wait: a run still writing must not see its branch go, nor make it again.
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while kube.get_cronjob(spec.namespace, name) is not None:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    "kubernetes", f"waiting for the runs of CronJob {name} to stop"
                )
            time.sleep(0.5)
        return True

    if removal.step(f"deleted CronJob {name} and its runs", delete):
        rules = _rules(ctx)
        if rules is not None:
            removal.step(
                f"withdrew the Trino grants of {spec.names.runner_principal(spec.namespace)}",
                lambda: withdraw(rules, spec.client_id),
            )


def _owned(live: dict[str, Any], ctx: PartContext) -> bool:
    owners = live["metadata"].get("ownerReferences") or []
    return any(o.get("uid") == ctx.owner.get("uid") for o in owners)


def withdraw(rules: RulesFile, client_id: str) -> bool:
    """Withdraw the client's grants in Trino (its runs and readers); True when done."""
    try:
        rules.remove(client_id)
    except OSError as exc:
        raise ServiceUnavailable("trino", f"writing the access rules: {exc}") from exc
    return True
