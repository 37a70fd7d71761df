"""Kafka's admin API: the topics a client's connector leaves behind when it is removed.

Kafka Connect creates the topics (auto-creation by the Debezium producer) but never
deletes them, so deletionPolicy Delete needs the broker itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable

SERVICE = "kafka"


class KafkaTopics:
    """List and delete topics. One short-lived admin connection per call: deletes are rare."""

    def __init__(self, bootstrap: str, *, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="clientpipelines-operator",
                request_timeout_ms=int(self.timeout * 1000),
            )
        except KafkaError as exc:
            raise ServiceUnavailable(SERVICE, f"cannot reach {self.bootstrap}: {exc}") from exc

    def names(self) -> list[str]:
        admin = self._admin()
        try:
            return sorted(admin.list_topics())
        except KafkaError as exc:
            raise ServiceUnavailable(SERVICE, f"listing topics failed: {exc}") from exc
        finally:
            admin.close()

    def delete(self, topics: Iterable[str]) -> list[str]:
        """Delete `topics`; returns those that existed (an absent topic is not an error)."""
        wanted = sorted(set(topics))
        if not wanted:
            return []
        admin = self._admin()
        try:
            existing = [t for t in wanted if t in set(admin.list_topics())]
            if existing:
                admin.delete_topics(existing, timeout_ms=int(self.timeout * 1000))
            return existing
        except UnknownTopicOrPartitionError:
            return []  # deleted meanwhile by someone else: the goal is reached
        except KafkaError as exc:
            detail = f"deleting topics {', '.join(wanted)} failed: {exc}"
            raise ServiceError(SERVICE, detail) from exc
        finally:
            admin.close()
