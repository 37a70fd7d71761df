"""`kubectl cpl`: what it prints from an object, and what preview shows (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clientpipelines.cli import human_age, parser, preview_lines, status_lines
from clientpipelines.operator.settings import Settings

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings.from_env(
    {
        "CONNECT_URL": "http://connect:8083",
        "NESSIE_URL": "http://nessie:19120/api/v2",
        "TRINO_HOST": "trino",
        "KAFKA_BOOTSTRAP": "kafka:9092",
        "ICEBERG_CATALOG_PROPERTIES": '{"iceberg.catalog.type": "nessie"}',
        "RUNNER_IMAGE": "registry.example.com/runner:1",
    }
)
PIPELINE: dict[str, Any] = {
    "apiVersion": "pipelines.promptly.io/v1alpha1",
    "kind": "ClientPipeline",
    "metadata": {"name": "acme", "namespace": "clients", "generation": 2},
    "spec": {
        "source": {
            "postgres": {
                "host": "db",
                "database": "omop",
                "tables": ["person", "provider"],
                "credentialsSecretRef": {"name": "acme-db"},
            }
        },
        "transform": {"schedule": "*/15 * * * *"},
    },
}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (250, "4m 10s"), (7500, "2h 5m"), (3 * 86400 + 4 * 3600, "3d 4h")],
)
def test_ages_read_like_kubectl(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_status_says_conditions_connector_slot_last_run_and_freshness() -> None:
    obj = {
        **PIPELINE,
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllPartsReady", "message": "ok"},
                {
                    "type": "ReplicationSlotHealthy",
                    "status": "False",
                    "reason": "RetainedWalOverLimit",
                    "message": "holds 2.0 GiB",
                },
            ],
            "connector": {
                "name": "acme-cdc",
                "state": "PAUSED",
                "tasks": [{"id": 0, "state": "PAUSED"}],
            },
            "replicationSlot": {
                "name": "acme_cdc",
                "exists": True,
                "active": False,
                "walStatus": "extended",
                "retainedWal": "2.0 GiB",
                "retainedWalLimit": "1.0 GiB",
            },
            "lastRun": {
                "job": "acme-pipeline-1",
                "phase": "Failed",
                "startTime": "2026-11-27T11:00:00Z",
                "completionTime": "2026-11-27T11:01:30Z",
                "failedChecks": ["relationships_provider_care_site_id"],
            },
            "lastSuccessfulRun": {"completionTime": "2026-11-27T09:00:00Z"},
            "failedRunsInARow": 2,
        },
    }
    text = "\n".join(status_lines(obj, NOW))
    assert "ReplicationSlotHealthy   False  RetainedWalOverLimit" in text
    assert "connector: acme-cdc PAUSED (tasks 0:PAUSED; restarts 0)" in text
    assert "acme_cdc holds 2.0 GiB of WAL (limit 1.0 GiB; INACTIVE" in text
    assert "last run: acme-pipeline-1 Failed in 1m 30s" in text
    assert "  failed: relationships_provider_care_site_id" in text
    assert "freshness: last successful run 3h 0m ago (2 failed since)" in text


def test_status_of_a_new_pipeline_says_what_is_missing() -> None:
    text = "\n".join(status_lines(PIPELINE, NOW))
    assert "not yet acted on generation 2" in text
    assert "none yet (is the operator running?)" in text
    assert "freshness: never published" in text


def test_preview_lists_every_part_and_never_a_password() -> None:
    text = "\n".join(preview_lines(PIPELINE, SETTINGS))
    for part in (
        "Kafka Connect connector acme-cdc",
        "replication slot acme_cdc, publication acme_cdc",
        "acme.public.person",
        "acme_staging (iceberg)",
        "acme_cdc (kafka)",
        "Nessie branch acme-staging",
        "CronJob acme-pipeline: schedule '*/15 * * * *', image registry.example.com/runner:1",
    ):
        assert part in text
    assert "database.password = <from Secret acme-db, key password>" in text


def test_every_command_takes_the_client_id() -> None:
    for command in ("status", "run", "suspend", "resume", "restart-connector", "logs"):
        assert parser().parse_args([command, "acme"]).id == "acme"
    assert parser().parse_args(["preview", "-f", "-"]).file == "-"
