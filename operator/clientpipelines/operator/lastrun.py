"""The last pipeline run, read from its Job and recorded in the ClientPipeline's status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clientpipelines.clients.kube import KubeClient
from clientpipelines.manifests import LABEL_CLIENT


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


def record(kube: KubeClient, job: Mapping[str, Any]) -> None:
    meta = job["metadata"]
    client_id = (meta.get("labels") or {}).get(LABEL_CLIENT)
    if not client_id:
        return
    pipeline = kube.get_pipeline(meta["namespace"], client_id)
    if pipeline is None:
        return
    run = run_of(job)
    if is_newer(run, (pipeline.get("status") or {}).get("lastRun")):
        kube.patch_pipeline_status(meta["namespace"], client_id, {"lastRun": run})
