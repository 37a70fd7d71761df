"""Kafka: a client's change topics (admin API), and the signals the operator sends
its connector.

Kafka Connect creates a table's topic with its first event and never deletes it:
the operator creates the topics of tables that have no event yet (empty tables),
and deletes them all under deletionPolicy Delete.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable

SERVICE = "kafka"


class KafkaTopics:
    """List, create and delete topics, send a signal. One short-lived connection per
    call: all of these are rare."""

    def __init__(self, bootstrap: str, *, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout

    def _reachable(self) -> None:
        host, _, port = self.bootstrap.split(",")[0].strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=self.timeout).close()
        except OSError as exc:
            raise ServiceUnavailable(SERVICE, f"cannot reach {self.bootstrap}: {exc}") from exc

    @contextmanager
    def _admin(self) -> Iterator[KafkaAdminClient]:
        # kafka-python starts its I/O thread before it bootstraps and does not stop it
        # when bootstrapping fails: try a plain connection first, so a broker that is
        # down costs a refused connect, not a leaked thread per retry.
        self._reachable()
        ms = int(self.timeout * 1000)
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="clientpipelines-operator",
                bootstrap_timeout_ms=ms,
                request_timeout_ms=ms + 5000,  # longer than the broker-side timeouts below
            )
        except (KafkaError, RuntimeError) as exc:
            raise ServiceUnavailable(SERVICE, f"cannot reach {self.bootstrap}: {exc}") from exc
        try:
            yield admin
        except (KafkaError, RuntimeError) as exc:
            raise ServiceUnavailable(SERVICE, f"{type(exc).__name__}: {exc}") from exc
        finally:
            admin.close()

    def ensure_topics(
        self, topics: Mapping[str, Mapping[str, str]], *, partitions: int = -1
    ) -> list[str]:
        """Create the topics that do not exist, with their configs; returns those created.

        Partitions (unless given) and replication factor are the broker's defaults
        (-1), as Kafka Connect's topic creation uses them. A topic someone else created
        meanwhile (Kafka Connect, for a table's first event) counts as there.
        """
        with self._admin() as admin:
            missing = sorted(set(topics) - set(admin.list_topics()))
            if not missing:
                return []
            result = admin.create_topics(
                {t: {"configs": dict(topics[t]), "num_partitions": partitions} for t in missing},
                timeout_ms=int(self.timeout * 1000),
                raise_errors=False,
                wait_for_metadata=True,
            )
        _raise_failures("creating topics", result, TopicAlreadyExistsError.errno)
        return missing

    def delete_matching(self, wanted: Callable[[str], bool]) -> list[str]:
        """Delete every topic `wanted` accepts; returns those deleted.

        A topic that is already gone counts as deleted; any other per-topic error is
        raised, so the caller keeps its finalizer and retries.
        """
        with self._admin() as admin:
            existing = sorted(t for t in admin.list_topics() if wanted(t))
            if not existing:
                return []
            result = admin.delete_topics(
                existing, timeout_ms=int(self.timeout * 1000), raise_errors=False
            )
        _raise_failures("deleting topics", result, UnknownTopicOrPartitionError.errno)
        return existing

    def send(self, topic: str, key: str, value: str, *, partition: int | None = None) -> None:
        """Produce one message and wait until the broker has it (all in-sync replicas)."""
        self._reachable()  # fail fast, as _admin does
        try:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="clientpipelines-operator",
                acks="all",
                request_timeout_ms=int(self.timeout * 1000),
                # A missing topic fails within the timeout, not after a minute.
                max_block_ms=int(self.timeout * 1000),
            )
        except (KafkaError, RuntimeError) as exc:
            raise ServiceUnavailable(SERVICE, f"cannot reach {self.bootstrap}: {exc}") from exc
        try:
            sent = producer.send(topic, key=key.encode(), value=value.encode(), partition=partition)
            sent.get(timeout=self.timeout)
        except (KafkaError, RuntimeError) as exc:
            raise ServiceUnavailable(SERVICE, f"{type(exc).__name__}: {exc}") from exc
        finally:
            producer.close(timeout=self.timeout)


def _raise_failures(what: str, result: Mapping[str, Any], fine: int) -> None:
    """Raise for each topic of an admin response whose error is neither 0 nor `fine`
    (the error that means it is already as wanted)."""
    failed = [
        f"{t.get('name')}: {for_code(t['error_code']).__name__}"
        for t in result.get("topics", [])
        if t.get("error_code") not in (0, fine)
    ]
    if failed:
        raise ServiceError(SERVICE, f"{what} failed: {', '.join(failed)}")
