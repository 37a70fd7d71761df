"""Every OMOP CDM table a client onboards, through the real pipeline, row for row."""

from __future__ import annotations

import uuid

import psycopg

from devstack.sampledata import CLINICAL_TABLES, SAMPLE_TABLES, SampleData
from devstack.stack import Endpoints, Stack
from devstack.wiring import unwire_client, wait_for_cdc, wire_client
from tests.integration.test_runner import (
    assert_lake_equals_source,
    contract,
    main_hash,
    runner,
)


def test_every_clinical_table_is_published_row_for_row(platform: Stack) -> None:
    # 18 CDM tables (every clinical event table, the health system, eras): a
    # snapshot, then inserts, updates (primary keys too) and deletes in every one.
    assert len(CLINICAL_TABLES) >= 15
    src = wire_client(platform, f"o{uuid.uuid4().hex[:8]}", rows=60, tables=CLINICAL_TABLES)
    try:
        # Notes long enough for Postgres to TOAST them (stored out of line, compressed
        # poorly): an update that leaves them unchanged reaches Debezium without them.
        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute(
                "update note set note_text = %s where note_id <= 5",
                (" ".join(uuid.uuid4().hex for _ in range(400)),),
            )
        wait_for_cdc(platform, src.client_id)
        first = runner(contract(platform, src))
        assert first.returncode == 0, first.stdout + first.stderr
        assert_lake_equals_source(platform, src)

        sample = SampleData(platform)
        done = sample.apply_changes(src.client_id, count=600, seed=3, batch=50)
        changes = sample.last_changes
        assert changes is not None
        assert changes.touched == set(CLINICAL_TABLES), set(CLINICAL_TABLES) - changes.touched
        assert done["insert"] and done["update"] and done["delete"] and changes.rekeyed, done
        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            touched = conn.execute(
                "update note set note_title = 'only the title' where length(note_text) > 10000"
            ).rowcount
        assert touched
        wait_for_cdc(platform, src.client_id)
        second = runner(contract(platform, src))
        assert second.returncode == 0, second.stdout + second.stderr
        assert_lake_equals_source(platform, src)
    finally:
        unwire_client(platform, src.client_id)


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
