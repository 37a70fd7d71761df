"""The runner's termination message: what the operator learns of a run, within 4096 bytes."""

from __future__ import annotations

import json
from pathlib import Path

from clientpipelines.runconfig import RunConfig
from clientpipelines.runner.run import Run, RunOptions, outcome_message

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
