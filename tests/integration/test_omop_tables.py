"""What the CDM definition implies for a client's source, through the real pipeline.

Every clinical table through the operator, row for row, with tables added and removed
live: test_every_clinical_table_live_added_backfilled_removed_kept in test_operator.py.
"""

from __future__ import annotations

import uuid

import psycopg

from devstack.sampledata import SAMPLE_TABLES
from devstack.stack import Endpoints, Stack
from devstack.wiring import unwire_client, wait_for_cdc, wire_client
from tests.integration.test_runner import (
    contract,
    main_hash,
    runner,
)


def test_a_source_table_missing_a_cdm_column_fails_the_run_naming_it(
    platform: Stack, endpoints: Endpoints
) -> None:
    src = wire_client(platform, f"d{uuid.uuid4().hex[:8]}", rows=50, tables=SAMPLE_TABLES)
    try:
        wait_for_cdc(platform, src.client_id)
        assert runner(contract(platform, src)).returncode == 0
        head = main_hash(endpoints)
        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute("alter table provider drop column npi")
            conn.execute("alter table care_site add column local_code text")
            conn.execute("update provider set provider_name = 'Zoë' where provider_id <= 5")
            conn.execute("update care_site set local_code = 'x1' where care_site_id <= 2")
        wait_for_cdc(platform, src.client_id)
        drifted = runner(contract(platform, src))
        assert drifted.returncode == 1, drifted.stdout + drifted.stderr
        assert "lacks OMOP CDM v5.4 column(s): provider: npi" in drifted.stdout
        assert "care_site: column(s) beyond the OMOP CDM left out of the lake: local_code" in (
            drifted.stdout
        )
        assert "[4/7] dbt build" not in drifted.stdout  # refused before building
        assert main_hash(endpoints) == head
    finally:
        unwire_client(platform, src.client_id)
