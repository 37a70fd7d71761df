"""The last pipeline run, read from its Job and recorded in the ClientPipeline's status."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from clientpipelines.clients.kube import KubeClient
from clientpipelines.manifests import LABEL_CLIENT
from clientpipelines.operator import conditions
from clientpipelines.operator.conditions import Condition
from clientpipelines.runconfig import InvalidRunConfig, RunConfig


def report_of(job: Mapping[str, Any]) -> str | None:
    """Where the Job's run stored its Elementary report (pure).

    From the run contract the Job itself carries (its container's environment) and
    its name, which is the run's id: what ran, not what the spec says now.
    """
    try:
        container = job["spec"]["template"]["spec"]["containers"][0]
    except (KeyError, IndexError, TypeError):
        return None
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    try:
        return RunConfig.from_env(env).report_uri(job["metadata"]["name"])
    except InvalidRunConfig:
        return None


def parse_outcome(messages: list[str]) -> dict[str, Any]:
    """The runner's outcome from its Pod's termination message; {} if none or garbled (pure)."""
    for message in messages:
        try:
            outcome = json.loads(message)
        except ValueError:
            continue
        if isinstance(outcome, dict):
            return outcome
    return {}


def _names(value: Any, limit: int = 20) -> list[str]:
    return [str(v)[:200] for v in value[:limit]] if isinstance(value, list) else []


def run_of(job: Mapping[str, Any], outcome: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """status.lastRun for one Job, with what its runner said (`outcome`) when it ended (pure)."""
    status = job.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conds or status.get("succeeded"):
        phase, message = "Succeeded", ""
    elif "Failed" in conds or status.get("failed"):
        phase = "Failed"
        message = str((conds.get("Failed") or {}).get("message") or "the run failed")
    else:
        phase, message = "Running", ""
    run = {"job": job["metadata"]["name"], "phase": phase}
    start = status.get("startTime") or job["metadata"].get("creationTimestamp")
    if start:
        run["startTime"] = str(start)
    if status.get("completionTime"):
        run["completionTime"] = str(status["completionTime"])
    if message:
        run["message"] = message[:500]
    outcome = outcome or {}
    # Linked only when the runner says it stored it, and where this Job's contract
    # puts reports (the runner's word is not taken for any other address).
    expected = report_of(job)
    if expected and outcome.get("report") == expected:
        run["report"] = expected
    if isinstance(outcome.get("changedKeys"), int) and phase == "Succeeded":
        run["changedKeys"] = outcome["changedKeys"]
    if outcome.get("reportError"):
        run["reportError"] = str(outcome["reportError"])[:300]
    for key, field in (("failed", "failedChecks"), ("warned", "warnedTests")):
        if names := _names(outcome.get(key)):
            omitted = int(outcome.get(f"{key}Omitted") or 0) + len(outcome[key]) - len(names)
            run[field] = names + ([f"... and {omitted} more"] if omitted > 0 else [])
    return run


def is_newer(run: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> bool:
    if not recorded:
        return True
    if run.get("job") == recorded.get("job"):
        # None: a field a merge patch removes (never stored).
        return {k: v for k, v in run.items() if v is not None} != {
            k: v for k, v in recorded.items() if v is not None
        }
    return str(run.get("startTime", "")) >= str(recorded.get("startTime", ""))


LAST_RUN_CONDITION = "LastRunSucceeded"


def next_status(
    status: Mapping[str, Any], run: Mapping[str, Any], *, degraded_after: int, now: str
) -> tuple[dict[str, Any], list[tuple[str, str, str]]] | None:
    """The status patch and Events a Job's state leads to; None when nothing changes (pure).

    A run that has just finished moves `LastRunSucceeded`, `lastSuccessfulRun` and
    the count of failed runs in a row; from `degraded_after` failures in a row the
    reason is `RunsFailing` (ArgoCD shows the pipeline Degraded).
    """
    recorded = status.get("lastRun")
    if not is_newer(run, recorded):
        return None
    # "message": None removes an earlier run's failure message (a merge patch keeps
    # whatever it does not name).
    patch: dict[str, Any] = {
        "lastRun": {
            **dict.fromkeys(
                ("message", "report", "reportError", "failedChecks", "warnedTests", "changedKeys")
            ),
            **run,
        }
    }
    events: list[tuple[str, str, str]] = []
    already = (recorded or {}).get("job") == run["job"] and (recorded or {}).get("phase") == run[
        "phase"
    ]
    if run["phase"] == "Running" or already:
        return patch, events
    generation = int(status.get("observedGeneration") or 0)
    if run["phase"] == "Succeeded":
        patch["lastSuccessfulRun"] = {
            k: run[k] for k in ("job", "startTime", "completionTime") if k in run
        }
        patch["failedRunsInARow"] = 0
        cond = Condition(LAST_RUN_CONDITION, True, "RunSucceeded", f"{run['job']} published")
    else:
        failures = int(status.get("failedRunsInARow") or 0) + 1
        patch["failedRunsInARow"] = failures
        reason = "RunsFailing" if failures >= degraded_after else "RunFailed"
        failed = run.get("failedChecks") or []
        what = f"failed: {', '.join(failed)}" if failed else run.get("message") or "failed"
        message = (
            f"{failures} run(s) failed in a row; the last, {run['job']}: {what}"
            " (its log has the offending keys)"
        )
        cond = Condition(LAST_RUN_CONDITION, False, reason, message)
        events.append(("Warning", "RunFailed", message))
    if run.get("reportError"):
        # The report never blocks a publish; it is said here, once per run.
        events.append(
            (
                "Warning",
                "ReportFailed",
                f"{run['job']}: the Elementary report failed: {run['reportError']}",
            )
        )
    patch["conditions"] = conditions.merge(
        status.get("conditions"), [cond], generation=generation, now=now
    )
    return patch, events


def record(
    kube: KubeClient, job: Mapping[str, Any], *, degraded_after: int, now: str
) -> tuple[dict[str, Any], list[tuple[str, str, str]]] | None:
    """Record the Job's run in its ClientPipeline; returns the pipeline and the Events."""
    meta = job["metadata"]
    client_id = (meta.get("labels") or {}).get(LABEL_CLIENT)
    if not client_id:
        return None
    pipeline = kube.get_pipeline(meta["namespace"], client_id)
    if pipeline is None:
        return None
    outcome: dict[str, Any] = {}
    if run_of(job)["phase"] != "Running":
        outcome = parse_outcome(kube.termination_messages(meta["namespace"], meta["name"]))
    change = next_status(
        pipeline.get("status") or {}, run_of(job, outcome), degraded_after=degraded_after, now=now
    )
    if change is None:
        return None
    patch, events = change
    kube.patch_pipeline_status(meta["namespace"], client_id, patch)
    return {**pipeline, "status": {**(pipeline.get("status") or {}), **patch}}, events
