"""The HTTP plumbing the REST clients share: timeouts, error mapping, JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable

DEFAULT_TIMEOUT = 10.0


class RestClient:
    """A JSON REST client for one service at `base_url`."""

    service = "service"

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        token_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.token_file = token_file

    def _headers(self) -> dict[str, str] | None:
        """A bearer token read from `token_file` for each request: a projected
        ServiceAccount token is rotated in place by the kubelet."""
        if not self.token_file:
            return None
        try:
            token = Path(self.token_file).read_text().strip()
        except OSError as exc:
            raise ServiceError(
                self.service, f"cannot read the token file {self.token_file}: {exc.strerror}"
            ) from exc
        return {"Authorization": f"Bearer {token}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send one request; statuses in `allow` are returned instead of raised."""
        try:
            resp = self.session.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                params=params,
                headers=self._headers(),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ServiceUnavailable(
                self.service, f"{method} {path}: {type(exc).__name__}"
            ) from exc
        if resp.status_code < 300 or resp.status_code in allow:
            return resp
        detail = _detail(resp)
        if resp.status_code >= 500:
            raise ServiceUnavailable(self.service, f"{method} {path}: {detail}", resp.status_code)
        if resp.status_code == 409:
            raise Conflict(self.service, f"{method} {path}: {detail}", resp.status_code)
        raise ServiceError(self.service, f"{method} {path}: {detail}", resp.status_code)


def _detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code} {resp.text[:300]}"
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body
        return f"HTTP {resp.status_code} {message}"
    return f"HTTP {resp.status_code} {body}"
