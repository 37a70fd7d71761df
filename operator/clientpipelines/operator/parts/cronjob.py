"""The client's CronJob: runs the pipeline runner on the schedule; owned by the ClientPipeline."""

from __future__ import annotations

import time
from typing import Any

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.operator import desired
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal


def ensure(ctx: PartContext) -> PartResult:
    spec, kube = ctx.spec, ctx.systems.kubernetes()
    want = desired.build_cronjob(spec, ctx.systems.settings, ctx.owner)
    name = want["metadata"]["name"]
    writes = []
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
                )
            if not (
                desired.is_subset(want["spec"], live["spec"])
                and desired.is_subset(want["metadata"]["labels"], live["metadata"].get("labels"))
            ):
                kube.replace_cronjob(want, live["metadata"]["resourceVersion"])
                writes.append(f"updated CronJob {name}")
    except ServiceError as exc:
        if exc.status in (400, 422):
            return PartResult(False, "InvalidSchedule", str(exc))
        raise
    reason = "Suspended" if spec.suspend else "Scheduled"
    return PartResult(
        True, reason, f"{name}: {spec.schedule}", status={"cronJob": name}, writes=writes
    )


# How long one removal pass waits for runs to stop before it retries later.
STOP_WAIT_SECONDS = 20.0


def remove(ctx: PartContext, removal: Removal) -> None:
    """Delete the CronJob first, so no run is writing while the other parts go.

    Its owner reference would remove it with the ClientPipeline anyway, but only
    after the finalizer: running Jobs would keep using the branch and catalogs.
    """
    spec, name = ctx.spec, ctx.spec.names.cronjob

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

    removal.step(f"deleted CronJob {name} and its runs", delete)


def _owned(live: dict[str, Any], ctx: PartContext) -> bool:
    owners = live["metadata"].get("ownerReferences") or []
    return any(o.get("uid") == ctx.owner.get("uid") for o in owners)
