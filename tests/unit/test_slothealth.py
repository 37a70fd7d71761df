"""Replication-slot health and the per-pipeline gauges: what status and metrics say (pure)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from clientpipelines.clients.postgres import SlotState
from clientpipelines.manifests import CRD_PATH
from clientpipelines.operator import lastrun, metrics, slothealth
from clientpipelines.operator.quantity import QUANTITY, human_bytes, parse_quantity
from devstack.paths import REPO_ROOT

GiB, MiB = 1 << 30, 1 << 20


@pytest.mark.parametrize(
    ("text", "size"), [("1Gi", GiB), ("512Mi", 512 * MiB), ("4096", 4096), ("2Ti", 2 << 40)]
)
def test_quantities_are_read_as_kubernetes_writes_them(text: str, size: int) -> None:
    assert parse_quantity(text) == size


@pytest.mark.parametrize("text", ["", "0", "1G", "1.5Gi", "-1Gi", "1 Gi"])
def test_a_size_that_is_not_a_binary_quantity_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_quantity(text)


def test_the_crd_and_the_chart_schema_accept_exactly_what_the_operator_reads() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    field = crd["properties"]["spec"]["properties"]["ingestion"]["properties"]["cdc"]["properties"][
        "maxRetainedWal"
    ]
    chart = json.loads(
        (REPO_ROOT / "charts/clientpipeline-operator/values.schema.json").read_text()
    )
    for pattern in (field["pattern"], chart["properties"]["maxRetainedWal"]["pattern"]):
        for sample in ("1Gi", "512Mi", "4096", "1G", "0", "1.5Gi", "1 Gi"):
            assert bool(re.match(pattern, sample)) == bool(QUANTITY.match(sample)), sample


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (12 * MiB, "12 MiB"), (GiB * 3.2, "3.2 GiB")],
)
def test_sizes_are_shown_in_human_units(size: float, text: str) -> None:
    assert human_bytes(int(size)) == text


def _assess(retained: int, *, active: bool = True, wal: str = "reserved", recorded: Any = None):  # type: ignore[no-untyped-def]
    return slothealth.assess(
        "acme_cdc", SlotState(active, wal, retained), limit=GiB, recorded=recorded
    )


def test_a_slot_within_its_limit_is_healthy_and_recorded_in_human_units() -> None:
    cond, status = _assess(5 * MiB)
    assert (cond.type, cond.status, cond.reason) == ("ReplicationSlotHealthy", True, "WithinLimit")
    assert status["retainedWal"] == "5.0 MiB" and status["retainedWalBytes"] == 5 * MiB
    assert status["retainedWalLimit"] == "1.0 GiB"


def test_a_slot_over_its_limit_says_how_much_and_why() -> None:
    cond, _ = _assess(3 * GiB, active=False)
    assert (cond.status, cond.reason) == (False, "RetainedWalOverLimit")
    assert "3.0 GiB" in cond.message and "limit of 1.0 GiB" in cond.message
    assert "no connector holds it" in cond.message
    cond, _ = _assess(3 * GiB, active=True)  # a paused connector keeps its connection
    assert "not confirming changes (paused, or behind)" in cond.message


def test_a_lost_slot_is_unhealthy_whatever_its_size() -> None:
    cond, _ = _assess(MiB, wal="lost")
    assert (cond.status, cond.reason) == (False, "SlotLost")


def test_no_slot_yet_is_not_a_problem() -> None:
    cond, status = slothealth.assess("acme_cdc", None, limit=GiB, recorded=None)
    assert (cond.status, cond.reason) == (True, "NoSlot")
    # The figures of a slot that existed before are cleared (None: removed by the patch).
    assert {k: v for k, v in status.items() if v is not None} == {
        "name": "acme_cdc",
        "exists": False,
    }
    assert status["retainedWal"] is None


def test_small_moves_keep_the_recorded_figure_so_an_idle_pipeline_writes_nothing() -> None:
    _, first = _assess(100 * MiB)
    cond, again = _assess(100 * MiB + 300 * 1024, recorded=first)
    assert again == first
    assert "100 MiB" in cond.message
    # A material move (10% here) is recorded.
    _, moved = _assess(120 * MiB, recorded=first)
    assert moved["retainedWalBytes"] == 120 * MiB


def test_crossing_the_limit_is_always_recorded() -> None:
    _, near = _assess(GiB - MiB // 2)
    cond, over = _assess(GiB, recorded=near)
    assert cond.status is False and over["retainedWalBytes"] == GiB


def test_the_active_flag_moving_is_recorded() -> None:
    _, first = _assess(10 * MiB, active=True)
    _, paused = _assess(10 * MiB, active=False, recorded=first)
    assert paused["active"] is False


def _sample(name: str, **labels: str) -> float | None:
    text = generate_latest().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.startswith(name + "{"):
            got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if got == want:
                return float(value)
    return None


def test_per_pipeline_gauges_follow_the_status_and_go_with_the_pipeline() -> None:
    pipeline = {
        "metadata": {"namespace": "ns1", "name": "gauged"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ReplicationSlotHealthy", "status": "False"},
            ],
            "connector": {"state": "PAUSED", "restarts": 2},
            "replicationSlot": {"name": "gauged_cdc", "exists": True},
            "lastRun": {
                "job": "gauged-1",
                "phase": "Succeeded",
                "startTime": "2026-11-27T10:00:00Z",
                "completionTime": "2026-11-27T10:00:42Z",
                "changedKeys": 17,
            },
            "lastSuccessfulRun": {"completionTime": "2026-11-27T10:00:42Z"},
        },
    }
    metrics.record_status(pipeline)
    metrics.record_slot("ns1", "gauged", SlotState(False, "extended", 3 * GiB), GiB)
    labels = {"namespace": "ns1", "client": "gauged"}
    assert _sample("clientpipelines_condition", **labels, condition="Ready") == 1
    assert _sample("clientpipelines_condition", **labels, condition="ReplicationSlotHealthy") == 0
    assert _sample("clientpipelines_connector_state", **labels, state="PAUSED") == 1
    assert _sample("clientpipelines_connector_state", **labels, state="RUNNING") == 0
    assert _sample("clientpipelines_connector_task_restarts", **labels) == 2
    assert _sample("clientpipelines_last_run_duration_seconds", **labels) == 42
    assert _sample("clientpipelines_last_run_changed_keys", **labels) == 17
    assert _sample("clientpipelines_replication_slot_retained_wal_bytes", **labels) == 3 * GiB
    assert _sample("clientpipelines_replication_slot_retained_wal_limit_bytes", **labels) == GiB
    assert _sample("clientpipelines_replication_slot_active", **labels) == 0

    metrics.forget("ns1", "gauged")
    assert "gauged" not in generate_latest().decode()


def test_a_published_runs_changed_keys_reach_last_run() -> None:
    job = {
        "metadata": {"name": "acme-1"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    assert lastrun.run_of(job, {"changedKeys": 5})["changedKeys"] == 5
    failed = {**job, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert "changedKeys" not in lastrun.run_of(failed, {"changedKeys": 5})
