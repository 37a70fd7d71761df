from __future__ import annotations

import pytest

from clientpipelines.clients.kafka_connect import ConnectorStatus
from clientpipelines.clients.nessie import Reference
from clientpipelines.clients.trino import create_catalog_sql, quote_literal


def test_create_catalog_sql_quotes_values_and_sorts_properties() -> None:
    sql = create_catalog_sql(
        "acme_health_src", "postgresql", {"connection-user": "o'brien", "a.b": "x"}
    )
    assert sql == (
        "CREATE CATALOG acme_health_src USING postgresql\n"
        "WITH (\n"
        "  \"a.b\" = 'x',\n"
        "  \"connection-user\" = 'o''brien'\n"
        ")"
    )


@pytest.mark.parametrize("name", ["Acme", "acme-health", "a;drop", ""])
def test_create_catalog_sql_refuses_names_that_need_quoting(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        create_catalog_sql(name, "kafka", {})


def test_quote_literal_doubles_quotes() -> None:
    assert quote_literal("it's") == "'it''s'"


def test_connector_status_lists_failed_tasks() -> None:
    status = ConnectorStatus.from_json(
        {
            "name": "acme-health-cdc",
            "connector": {"state": "RUNNING", "worker_id": "w"},
            "tasks": [
                {"id": 0, "state": "FAILED", "trace": "boom"},
                {"id": 1, "state": "RUNNING"},
            ],
        }
    )
    assert status.state == "RUNNING"
    assert [t.id for t in status.failed_tasks] == [0]
    assert status.failed_tasks[0].trace == "boom"


def test_reference_round_trips_through_json() -> None:
    ref = Reference(name="acme-health-staging", hash="abc")
    assert Reference.from_json(ref.to_json()) == ref
