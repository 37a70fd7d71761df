"""Requests a person makes on a ClientPipeline through an annotation: run now, restart
the connector. ArgoCD's resource actions and `kubectl cpl` set them; the operator acts
once and removes the annotation (as Strimzi's `strimzi.io/restart`).

An annotation rather than a direct call means whoever asks needs only `patch` on
ClientPipelines (no rights on Jobs, no Kafka Connect credentials), and a request made
while the operator is down is acted on when it is back. The annotation's value (a
timestamp) names the request: acting on it twice creates nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.manifests import GROUP
from clientpipelines.operator.policy import Claim, refusal
from clientpipelines.operator.spec import InvalidSpec, PipelineSpec, parse_spec
from clientpipelines.operator.systems import Systems

RUN_NOW = f"{GROUP}/run-now"
RESTART_CONNECTOR = f"{GROUP}/restart-connector"
REQUESTS = (RUN_NOW, RESTART_CONNECTOR)
# On the Job a run-now request made, with the request's value.
REQUESTED_BY = f"{GROUP}/requested"
MANUAL = {"cronjob.kubernetes.io/instantiate": "manual"}  # as `kubectl create job --from`


def pending(meta: Mapping[str, Any]) -> dict[str, str]:
    """The requests an object carries (pure)."""
    annotations = meta.get("annotations") or {}
    return {k: str(annotations[k]) for k in REQUESTS if k in annotations}


def manual_job_name(cronjob: str, request: str) -> str:
    """One Job name per request (pure): the same request never makes two runs."""
    return f"{cronjob}-run-{hashlib.sha256(request.encode()).hexdigest()[:6]}"


def build_manual_job(cronjob: Mapping[str, Any], request: str) -> dict[str, Any]:
    """A Job from the CronJob's template, owned by the CronJob, as `kubectl create job
    --from=cronjob/...` makes it (pure)."""
    meta, template = cronjob["metadata"], cronjob["spec"]["jobTemplate"]
    job_meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": manual_job_name(meta["name"], request),
            "namespace": meta["namespace"],
            "labels": dict(job_meta.get("labels") or {}),
            "annotations": {**(job_meta.get("annotations") or {}), **MANUAL, REQUESTED_BY: request},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": dict(template["spec"]),
    }


def handle(
    systems: Systems, pipeline: Mapping[str, Any], claims: tuple[Claim, ...]
) -> list[tuple[str, str, str]]:
    """Act on each pending request and remove its annotation; the Events to post.

    A request that cannot be served (no CronJob yet, full-reload mode, a refused
    pipeline) is removed with a Warning saying why; one that failed on a service
    error stays, and is tried again on the next event or drift check.
    """
    meta = pipeline["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    requests = pending(meta)
    if not requests:
        return []
    kube = systems.kubernetes()
    events: list[tuple[str, str, str]] = []
    spec: PipelineSpec | None = None
    problem: str | None = None
    try:
        spec = parse_spec(name, namespace, pipeline.get("spec") or {})
    except InvalidSpec as exc:
        problem = f"the spec cannot be read: {exc}"
    else:
        refused = refusal(spec, systems.settings, uid=str(meta["uid"]), claims=claims)
        if refused is not None:
            problem = f"the pipeline is refused: {refused.message}"
    for key, request in requests.items():
        try:
            if problem is not None or spec is None:
                events.append(("Warning", "RequestRefused", f"{key}={request} ignored: {problem}"))
            elif key == RUN_NOW:
                events.append(_run_now(systems, spec.namespace, spec.names.cronjob, meta, request))
            else:
                events.append(_restart_connector(systems, pipeline, spec.cdc, spec.names.connector))
        except (ServiceUnavailable, Conflict):
            raise  # kept: tried again on the next event or drift check
        except ServiceError as exc:
            # Refused for good (no such connector, an invalid Job): said once, dropped.
            events.append(("Warning", "RequestFailed", f"{key}={request} failed: {exc}"))
        kube.remove_pipeline_annotation(namespace, name, key, request)
    return events


def _run_now(
    systems: Systems, namespace: str, cronjob_name: str, owner: Mapping[str, Any], request: str
) -> tuple[str, str, str]:
    kube = systems.kubernetes()
    cronjob = kube.get_cronjob(namespace, cronjob_name)
    owned = cronjob is not None and any(
        ref.get("uid") == owner["uid"] for ref in cronjob["metadata"].get("ownerReferences") or []
    )
    if cronjob is None or not owned:
        return ("Warning", "RunNotStarted", f"run-now: no CronJob {cronjob_name} of this pipeline")
    job = build_manual_job(cronjob, request)
    created = kube.create_job(job)
    name = job["metadata"]["name"]
    return ("Normal", "RunRequested", f"run-now: {'started' if created else 'already ran'} {name}")


def _restart_connector(
    systems: Systems, pipeline: Mapping[str, Any], cdc: bool, connector: str
) -> tuple[str, str, str]:
    if not cdc:
        return ("Warning", "RequestRefused", "restart-connector: full-reload mode has no connector")
    systems.connect.restart(connector)
    # A person restarted it: the automatic restarts start over (and the alert on
    # exhausted restarts clears).
    meta = pipeline["metadata"]
    systems.kubernetes().patch_pipeline_status(
        str(meta["namespace"]),
        str(meta["name"]),
        {"connector": {"restarts": 0, "lastRestartTime": None}},
    )
    return (
        "Normal",
        "ConnectorRestarted",
        f"restart-connector: restarted {connector} and its tasks",
    )
