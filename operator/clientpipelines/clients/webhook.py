"""An HTTP webhook that receives notifications (Slack's incoming webhooks, or any
receiver of a JSON POST): failed pipeline runs."""

from __future__ import annotations

from typing import Any

from clientpipelines.clients._http import RestClient


class Webhook(RestClient):
    """POSTs JSON to one URL. The URL often holds a token: it is never logged."""

    service = "webhook"

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        super().__init__(url, timeout=timeout)

    def post(self, payload: dict[str, Any]) -> None:
        self.request("POST", "", json=payload)
