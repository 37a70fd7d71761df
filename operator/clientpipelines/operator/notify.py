"""Announcing failed runs to a webhook: best effort, never in the way of reconciling."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from clientpipelines.clients.errors import ServiceError
from clientpipelines.clients.webhook import Webhook
from clientpipelines.operator import metrics
from clientpipelines.operator.settings import Settings

log = logging.getLogger(__name__)


def failed_run_payload(pipeline: Mapping[str, Any], message: str) -> dict[str, Any]:
    """Slack-compatible (`text`), with the fields a receiver can route on (pure)."""
    meta, status = pipeline["metadata"], pipeline.get("status") or {}
    where = f"{meta['namespace']}/{meta['name']}"
    return {
        "text": f"Pipeline run failed for client {where}: {message}",
        "event": "RunFailed",
        "namespace": meta["namespace"],
        "client": meta["name"],
        "job": (status.get("lastRun") or {}).get("job"),
        "failedRunsInARow": status.get("failedRunsInARow"),
        "lastSuccessfulRun": (status.get("lastSuccessfulRun") or {}).get("completionTime"),
    }


def run_failed(settings: Settings, pipeline: Mapping[str, Any], message: str) -> None:
    if not settings.notify_webhook_url:
        return
    try:
        Webhook(settings.notify_webhook_url).post(failed_run_payload(pipeline, message))
    except ServiceError as exc:
        # The Event and the condition already say it; a receiver that is down
        # must not fail the handler (kopf would not retry an event handler anyway).
        metrics.NOTIFICATIONS.labels("error").inc()
        log.warning("could not notify the webhook of a failed run: %s", exc)
        return
    metrics.NOTIFICATIONS.labels("sent").inc()
