"""The last pipeline run, read from its Job and recorded in the ClientPipeline's status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.operator.desired import GROUP, LABEL_CLIENT, PLURAL, VERSION


def run_of(job: Mapping[str, Any]) -> dict[str, Any]:
    """status.lastRun for one Job (pure)."""
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
    return run


def is_newer(run: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> bool:
    if not recorded:
        return True
    if run.get("job") == recorded.get("job"):
        return dict(run) != dict(recorded)
    return str(run.get("startTime", "")) >= str(recorded.get("startTime", ""))


def record(api: client.ApiClient, job: Mapping[str, Any]) -> None:
    meta = job["metadata"]
    client_id = (meta.get("labels") or {}).get(LABEL_CLIENT)
    if not client_id:
        return
    objects = client.CustomObjectsApi(api)
    try:
        pipeline = objects.get_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], PLURAL, client_id
        )
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    run = run_of(job)
    recorded = ((pipeline if isinstance(pipeline, dict) else {}).get("status") or {}).get("lastRun")
    if is_newer(run, recorded):
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, client_id, {"status": {"lastRun": run}}
        )
