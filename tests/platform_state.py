"""Reads of the platform's state that only tests need (not part of the product's clients)."""

from __future__ import annotations

import json
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.naming import LAKE_CATALOG, MAIN_BRANCH
from devstack.stack import Endpoints, Stack

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
    trino = endpoints.trino()
    nessie = endpoints.nessie()
    branches = nessie.request("GET", "/trees").json().get("references", [])
    return {
        "trino catalogs": sorted(trino.catalogs() - PLATFORM_CATALOGS),
        "nessie branches": sorted(b["name"] for b in branches if b["name"] != MAIN_BRANCH),
        "kafka connect connectors": connector_names(KafkaConnectClient(endpoints.connect_url)),
    }


def earliest_offset(bootstrap: str, topic: str, partition: int = 0) -> int:
    """Where the partition starts now (its log start offset)."""
    from kafka import TopicPartition  # noqa: PLC0415
    from kafka.protocol.consumer.offsets import OffsetSpec  # noqa: PLC0415

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpipelines-tests")
    try:
        tp = TopicPartition(topic, partition)
        return int(admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset)
    finally:
        admin.close()


def set_topic_config(bootstrap: str, topic: str, configs: dict[str, str | None]) -> None:
    """Set (or, for None, remove) topic-level overrides, as `kafka-configs --alter` does."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpipelines-tests")
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    {k: ("DELETE", None) if v is None else ("SET", v) for k, v in configs.items()},
                )
            ],
            incremental=True,
        )
    finally:
        admin.close()


def s3_object(endpoints: Endpoints, uri: str) -> bytes | None:
    """The object at `uri` (s3://bucket/key), deleted once read; None if there is none."""
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from clientpipelines.runner.reports import split_s3_uri  # noqa: PLC0415

    bucket, key = split_s3_uri(uri)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint,
        aws_access_key_id=endpoints.s3_access_key,
        aws_secret_access_key=endpoints.s3_secret_key,
        region_name=endpoints.s3_region,
    )
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None
    s3.delete_object(Bucket=bucket, Key=key)
    return body


def credential_values(stack: Stack) -> dict[str, str]:
    """Every credential made on this stack (clients' database logins, the platform's
    own), by a name that is safe to print."""
    values = {
        f"client {path.stem}'s database password": str(json.loads(path.read_text())["password"])
        for path in sorted((stack.directory / "clients").glob("*.json"))
    }
    platform = stack.credentials()
    for key in ("postgres_password", "s3_secret_key", "trino_shared_secret"):
        values[f"the platform's {key}"] = platform[key]
    # The platform principals' Nessie tokens (Trino's is in its environment).
    for principal, path in stack.endpoints().nessie_tokens.items():
        values[f"the {principal}'s Nessie token"] = Path(path).read_text().strip()
    return values


def credential_sightings(stack: Stack, logs: list[Path]) -> list[str]:
    """Where a credential shows in what the product writes or serves: Trino's query
    history, Kafka Connect's stored connector configs, the operator's, runners' and
    services' logs (not the clients' own Postgres). Names the place and whose value,
    never the value."""
    secrets = credential_values(stack)
    places: dict[str, str] = {}
    ep = stack.endpoints()
    history = ep.trino().query("select query_id, query from system.runtime.queries")
    places.update({f"Trino query {qid}": str(text) for qid, text in history})
    connect = KafkaConnectClient(ep.connect_url)
    for name in connector_names(connect):
        places[f"Kafka Connect config of {name}"] = json.dumps(connect.get_config(name))
    service_logs = [stack.log(s) for s in ("trino", "connect", "kafka", "nessie", "s3proxy")]
    trino_log = stack.logs_dir / "trino-server.log"
    for path in [*service_logs, trino_log, *logs]:
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    return sorted(
        f"{whose} in {where}"
        for where, text in places.items()
        for whose, value in secrets.items()
        if value and value in text
    )
