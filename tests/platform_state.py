"""Reads of the platform's state that only tests need (not part of the product's clients)."""

from __future__ import annotations

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.clients.nessie import NessieClient
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import LAKE_CATALOG, MAIN_BRANCH
from devstack.stack import Endpoints

# What the stack itself provides; anything else was made for a client.
PLATFORM_CATALOGS = frozenset({LAKE_CATALOG, "system"})


def connector_names(connect: KafkaConnectClient) -> list[str]:
    return list(connect.request("GET", "/connectors").json())


def topic_names(bootstrap: str) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpipelines-tests")
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def topic_retention_ms(bootstrap: str, topics: list[str]) -> dict[str, str]:
    """Each topic's retention.ms as the broker applies it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpipelines-tests")
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None}) for t in topics]
        )
    finally:
        admin.close()
    return {t: str(c["retention.ms"]["value"]) for t, c in described["topic"].items()}


def leftovers(endpoints: Endpoints) -> dict[str, list[str]]:
    """Client catalogs, branches and connectors still on the platform."""
    trino = TrinoClient(endpoints.trino_host, endpoints.trino_port)
    nessie = NessieClient(endpoints.nessie_url)
    branches = nessie.request("GET", "/trees").json().get("references", [])
    return {
        "trino catalogs": sorted(trino.catalogs() - PLATFORM_CATALOGS),
        "nessie branches": sorted(b["name"] for b in branches if b["name"] != MAIN_BRANCH),
        "kafka connect connectors": connector_names(KafkaConnectClient(endpoints.connect_url)),
    }
