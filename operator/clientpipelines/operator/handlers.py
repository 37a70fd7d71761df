"""kopf handlers: decorator, one-line docstring, delegate."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, cast

import kopf
from kubernetes import client, config

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.manifests import GROUP, LABEL_CLIENT, PLURAL, VERSION
from clientpipelines.operator import lastrun, metrics, notify, reconcile, requests
from clientpipelines.operator.parts.cronjob import rules_of
from clientpipelines.operator.policy import Claim
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import InvalidSpec, parse_spec
from clientpipelines.operator.systems import Systems

log = logging.getLogger(__name__)

# Read at import (kopf registers the timer's interval with the handler), so here
# rather than in Settings, which is read once the operator starts.
DRIFT_INTERVAL = float(os.environ.get("DRIFT_INTERVAL_SECONDS", "300"))

_systems: Systems | None = None
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def systems() -> Systems:
    global _systems  # noqa: PLW0603 - one set of clients per process, built at startup
    if _systems is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        _systems = Systems.from_settings(Settings.from_env(), client.ApiClient())
    return _systems


def _lock(uid: str) -> threading.Lock:
    # The drift timer and an update can fire together; one reconcile at a time per object.
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Watch timeouts, persistence, and the metrics endpoint."""
    # Without timeouts a watch can hang silently on a half-closed connection.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.INFO
    # Handlers are synchronous and wait on the network: more threads than kopf's
    # CPU-based default let many pipelines reconcile side by side.
    settings.execution.max_workers = 20
    # How long a silent peer counts as alive: the standby's takeover delay.
    settings.peering.lifetime = int(os.environ.get("PEERING_LIFETIME_SECONDS", "60"))
    settings.peering.mandatory = systems().settings.peering is not None
    settings.persistence.finalizer = f"{GROUP}/cleanup"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    metrics.serve(systems().settings.metrics_port)
    # Trino reads its access rules from the file the operator keeps: it must exist
    # (admins and the operator, no client yet) before the first pipeline.
    rules = rules_of(systems().settings)
    if rules is not None:
        rules.refresh()


@kopf.index(GROUP, VERSION, PLURAL)
def pipeline_claims(
    *, name: str, namespace: str | None, meta: kopf.Meta, **_: Any
) -> dict[str, Claim]:
    """Every ClientPipeline by client id (its name), across the watched namespaces."""
    created = str(meta.get("creationTimestamp") or "")
    return {name: Claim(str(namespace), name, str(meta["uid"]), created)}


def _claims(name: str, kwargs: dict[str, Any]) -> tuple[Claim, ...]:
    index: kopf.Index[str, Claim] = kwargs["pipeline_claims"]
    return tuple(index.get(name, []))


def _pruned(value: Any) -> Any:
    """`value` as a merge patch would leave it stored: no None anywhere in a mapping."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _post_events(outcome: reconcile.Outcome, body: kopf.Body) -> None:
    for kind, reason, message in outcome.events:
        (kopf.info if kind == "Normal" else kopf.warn)(body, reason=reason, message=message)


def _reconcile(
    body: kopf.Body, meta: kopf.Meta, retry: int, drift: bool, claims: tuple[Claim, ...]
) -> None:
    name, namespace = str(meta["name"]), str(meta["namespace"])
    kube = systems().kubernetes()
    with _lock(str(meta["uid"])):
        # Read the object fresh and write its status here, under the lock: the body a
        # timer gets may predate the last reconcile's status, and a stale status
        # would make an unchanged pipeline look changed.
        current = kube.get_pipeline(namespace, name)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return  # gone, or being deleted: deletion owns it now (a drift check must not
            # re-create what the cleanup is removing)
        status = dict(current.get("status") or {})
        outcome = reconcile.reconcile(
            systems(),
            name=name,
            namespace=namespace,
            uid=str(current["metadata"]["uid"]),
            generation=int(current["metadata"].get("generation", 0)),
            spec=dict(current.get("spec") or {}),
            status=status,
            drift=drift,
            claims=claims,
        )
        if any(_pruned(status.get(k)) != _pruned(v) for k, v in outcome.status.items()):
            kube.patch_pipeline_status(namespace, name, outcome.status)
        metrics.record_status({**current, "status": {**status, **outcome.status}})
    _post_events(outcome, body)
    if outcome.retry_after is not None and not drift:
        delay = reconcile.retry_delay(outcome.retry_after, retry, backoff=outcome.backoff)
        ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
        raise kopf.TemporaryError(
            f"not ready, retrying in {delay:.0f}s: {ready['message']}", delay=delay
        )


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
def on_change(body: kopf.Body, meta: kopf.Meta, retry: int, **kwargs: Any) -> None:
    """Make every part match the spec."""
    _reconcile(body, meta, retry, drift=False, claims=_claims(str(meta["name"]), kwargs))


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=DRIFT_INTERVAL, initial_delay=DRIFT_INTERVAL, sharp=False
)
def on_drift(body: kopf.Body, meta: kopf.Meta, **kwargs: Any) -> None:
    """Re-check the real systems and repair what changed by hand."""
    claims = _claims(str(meta["name"]), kwargs)
    _reconcile(body, meta, 0, drift=True, claims=claims)
    if requests.pending(meta):
        _requests(body, claims)  # one that failed on a service error is tried again


def _has_request(meta: kopf.Meta, **_: Any) -> bool:
    return bool(requests.pending(meta))


@kopf.on.event(GROUP, VERSION, PLURAL, when=_has_request)
def on_request(body: kopf.Body, meta: kopf.Meta, type: str | None, **kwargs: Any) -> None:
    """Act on a run-now or restart-connector annotation (ArgoCD actions, kubectl cpl)."""
    if type == "DELETED" or meta.get("deletionTimestamp"):
        return
    _requests(body, _claims(str(meta["name"]), kwargs))


def _requests(body: kopf.Body, claims: tuple[Claim, ...]) -> None:
    meta = body["metadata"]
    with _lock(str(meta["uid"])):
        current = systems().kubernetes().get_pipeline(str(meta["namespace"]), str(meta["name"]))
        if current is None or not requests.pending(current["metadata"]):
            return  # acted on already (the event that removed the annotation)
        try:
            events = requests.handle(systems(), current, claims)
        except ServiceError as exc:  # unavailable: the request stays for the next try
            kopf.warn(body, reason="RequestDelayed", message=f"will retry: {exc}")
            return
    for kind, reason, message in events:
        (kopf.info if kind == "Normal" else kopf.warn)(body, reason=reason, message=message)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_delete(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, **kwargs: Any
) -> None:
    """Remove (Delete) or keep (Retain) what lives outside Kubernetes."""
    try:
        pipeline = parse_spec(str(meta["name"]), str(meta["namespace"]), dict(spec))
    except InvalidSpec as exc:
        # A spec that never could be read never made anything: let it go.
        kopf.warn(body, reason="InvalidSpec", message=f"deleted without cleanup: {exc}")
        return
    metrics.forget(pipeline.namespace, pipeline.client_id)
    if not pipeline.deletes_outside_kubernetes:
        try:
            revoked = reconcile.revoke(
                systems(),
                pipeline,
                uid=str(meta["uid"]),
                claims=_claims(str(meta["name"]), kwargs),
            )
        except ServiceUnavailable as exc:
            kopf.warn(body, reason="CleanupIncomplete", message=str(exc))
            raise kopf.TemporaryError(str(exc), delay=15) from exc
        kept = reconcile.retained(systems(), pipeline)
        kopf.info(body, reason="Retained", message=f"{kept}; {revoked}" if revoked else kept)
        return
    try:
        # Under the object's lock: a reconcile in flight finishes before removal starts.
        with _lock(str(meta["uid"])):
            done = reconcile.cleanup(
                systems(),
                pipeline,
                uid=str(meta["uid"]),
                status=dict(status),
                claims=_claims(str(meta["name"]), kwargs),
            )
    except reconcile.CleanupIncomplete as exc:
        kopf.warn(body, reason="CleanupIncomplete", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=15) from exc
    kopf.info(body, reason="CleanedUp", message="; ".join(done) or "nothing was left")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_CLIENT: kopf.PRESENT})
def on_job(body: kopf.Body, meta: kopf.Meta, type: str | None, **_: Any) -> None:
    """Mirror the newest pipeline run into its ClientPipeline's status; warn on failures."""
    if type == "DELETED":
        return
    kube = systems().kubernetes()
    pipeline = kube.get_pipeline(str(meta["namespace"]), str(meta["labels"][LABEL_CLIENT]))
    if pipeline is None:
        return
    # The same lock as reconciles: both rewrite status.conditions.
    with _lock(str(pipeline["metadata"]["uid"])):
        recorded = lastrun.record(
            kube,
            dict(body),
            degraded_after=systems().settings.failed_runs_degraded,
            now=reconcile.now(),
        )
    if recorded is not None:
        pipeline, events = recorded
        for kind, reason, message in events:
            post = kopf.info if kind == "Normal" else kopf.warn
            post(kopf.Body(cast(kopf.RawBody, pipeline)), reason=reason, message=message)
            if reason == "RunFailed":
                notify.run_failed(systems().settings, pipeline, message)
        metrics.record_status(pipeline)


@kopf.on.probe(id="services")
def probe(**_: Any) -> dict[str, str]:
    """Liveness: the operator loop answers (services' health is in conditions)."""
    return {"settings": "loaded" if _systems is not None else "pending"}
