"""The runner's termination message: what the operator learns of a run, within 4096 bytes."""

from __future__ import annotations

import json
from pathlib import Path

from clientpipelines.runconfig import RunConfig
from clientpipelines.runner.run import (
    PHASES_PREFIX,
    Run,
    RunOptions,
    outcome_message,
    phases_in_log,
)

CONFIG = RunConfig(
    client_id="acme",
    ingestion_mode="cdc",
    source_schema="public",
    tables=("provider",),
    trino_host="trino",
    trino_port=8080,
    nessie_url="http://nessie/api/v2",
)


def test_the_outcome_names_checks_and_fits_kubernetes_limit() -> None:
    run = Run(CONFIG, RunOptions(dbt_project_dir=Path("dbt"), run_id="r1"))
    run.failed = ["relationships_provider_care_site_id"]
    run.report = "s3://reports/acme/r1.html"
    small = json.loads(outcome_message(run, 1))
    assert small == {
        "exitCode": 1,
        "outcome": "failed",
        "report": "s3://reports/acme/r1.html",
        "failed": ["relationships_provider_care_site_id"],
    }
    run.warned = [f"accepted_values_provider_column_{i:04d}" for i in range(300)]
    big = outcome_message(run, 1)
    assert len(big.encode()) <= 4096
    parsed = json.loads(big)
    assert parsed["failed"] == ["relationships_provider_care_site_id"]  # warnings go first
    assert parsed["warnedOmitted"] + len(parsed["warned"]) == 300


def test_a_runs_phases_are_timed_and_read_back_from_its_log() -> None:
    run = Run(CONFIG, RunOptions(dbt_project_dir=Path("dbt"), run_id="r1"))
    with run.timed("audit"):
        pass
    with run.timed("audit"):  # a phase entered twice adds up
        pass
    assert list(run.phases) == ["audit"] and run.phases["audit"] >= 0
    log = "\n".join(
        [
            "[1/7] reset ...",
            PHASES_PREFIX + '{"lock": 0.1}',  # an earlier line is not the run's
            "summary: published in 3.0s",
            PHASES_PREFIX + json.dumps({"lock": 0.25, "build": 2.5}),
        ]
    )
    assert phases_in_log(log) == {"lock": 0.25, "build": 2.5}
    assert phases_in_log("no phases here") == {}
