"""Requests made by annotation (run now, restart the connector): the pure parts."""

from __future__ import annotations

from clientpipelines.manifests import LABEL_CLIENT
from clientpipelines.operator.requests import (
    MANUAL,
    REQUESTED_BY,
    RESTART_CONNECTOR,
    RUN_NOW,
    build_manual_job,
    manual_job_name,
    pending,
)

CRONJOB = {
    "metadata": {"name": "acme-pipeline", "namespace": "clients", "uid": "u-1"},
    "spec": {
        "schedule": "*/15 * * * *",
        "jobTemplate": {
            "metadata": {"labels": {LABEL_CLIENT: "acme"}},
            "spec": {"activeDeadlineSeconds": 60, "template": {"spec": {"containers": []}}},
        },
    },
}


def test_only_the_operators_request_annotations_are_pending() -> None:
    meta = {"annotations": {RUN_NOW: "t1", RESTART_CONNECTOR: "t2", "other/x": "y"}}
    assert pending(meta) == {RUN_NOW: "t1", RESTART_CONNECTOR: "t2"}
    assert pending({}) == {}


def test_a_manual_run_is_the_cronjobs_template_owned_by_the_cronjob() -> None:
    job = build_manual_job(CRONJOB, "2026-11-27T12:00:00Z")
    assert job["spec"] == CRONJOB["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["labels"] == {LABEL_CLIENT: "acme"}  # status.lastRun follows it
    assert job["metadata"]["annotations"] == {**MANUAL, REQUESTED_BY: "2026-11-27T12:00:00Z"}
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("CronJob", "u-1", True)


def test_one_request_one_job_name_within_kubernetes_limits() -> None:
    name = manual_job_name("a" * 43 + "-pipeline", "2026-11-27T12:00:00Z")
    assert name == manual_job_name("a" * 43 + "-pipeline", "2026-11-27T12:00:00Z")
    assert name != manual_job_name("a" * 43 + "-pipeline", "2026-11-27T12:00:01Z")
    assert len(name) <= 63
