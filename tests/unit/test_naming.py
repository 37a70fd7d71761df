from __future__ import annotations

import pytest

from clientpipelines.naming import (
    MAX_CLIENT_ID_LENGTH,
    ClientNames,
    InvalidClientId,
    sql_identifier,
)


def test_names_follow_the_design_contract() -> None:
    n = ClientNames("acme-health")
    assert n.connector == "acme-health-cdc"
    assert n.topic("public", "provider") == "acme-health.public.provider"
    assert n.owns_topic("acme-health.public.provider")
    assert n.owns_topic("__debezium-heartbeat.acme-health")
    assert not n.owns_topic("acme-health-2.public.provider")
    assert not n.owns_topic("__debezium-heartbeat.acme-health-2")
    assert n.replication_slot == n.publication == "acme_health_cdc"
    assert (n.source_catalog, n.cdc_catalog, n.staging_catalog) == (
        "acme_health_src",
        "acme_health_cdc",
        "acme_health_staging",
    )
    assert n.lake_schema == "acme_health"
    assert n.staging_branch == "acme-health-staging"
    assert n.cronjob == "acme-health-pipeline"


def test_longest_client_id_fits_every_system_limit() -> None:
    n = ClientNames("a" * MAX_CLIENT_ID_LENGTH)
    assert len(n.cronjob) == 52  # Kubernetes' CronJob name limit
    assert len(n.replication_slot) <= 63  # Postgres NAMEDATALEN - 1
    assert len(n.connector) <= 63


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("", "empty"),
        ("a" * (MAX_CLIENT_ID_LENGTH + 1), "characters"),
        ("Acme", "DNS-1123"),
        ("acme_health", "DNS-1123"),
        ("acme-", "DNS-1123"),
        ("1acme", "DNS-1123"),
        ("acme-elementary", "Elementary schema of client 'acme'"),
    ],
)
def test_bad_client_ids_are_refused_with_the_reason(client_id: str, reason: str) -> None:
    with pytest.raises(InvalidClientId, match=reason):
        ClientNames(client_id)


def test_sql_identifier_replaces_dashes() -> None:
    assert sql_identifier("a-b-c") == "a_b_c"
