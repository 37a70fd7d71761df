"""Errors shared by the service clients."""

from __future__ import annotations


class ServiceError(Exception):
    """A service refused a request; `status` is its HTTP status (0 if none)."""

    def __init__(self, service: str, message: str, status: int = 0) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class ServiceUnavailable(ServiceError):
    """The service could not be reached or answered 5xx: temporary, retry later."""


class Conflict(ServiceError):
    """The request lost a race (an expected hash or version moved): re-read and retry."""
