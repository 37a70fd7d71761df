"""Which tables a running connector must backfill (pure parts of parts/connector.py)."""

from __future__ import annotations

from clientpipelines.operator.parts.connector import _captured, _pending_backfill

LIVE = {"table.include.list": "public.care_site,public.provider"}


def test_a_new_connector_backfills_nothing_its_first_snapshot_reads_all() -> None:
    assert _captured({}, None) is None
    assert _pending_backfill({}, None, ("care_site", "person"), "initial") == []


def test_an_added_table_is_backfilled_until_asked() -> None:
    recorded = {"tables": ["care_site", "provider"]}
    captured = _captured(recorded, LIVE)
    assert captured == ["care_site", "provider"]
    tables = ("care_site", "person", "provider")
    assert _pending_backfill(recorded, captured, tables, "initial") == ["person"]
    # The next pass: the config is written (live lists it), the request still pending.
    after = {"tables": list(tables), "backfillPending": ["person"]}
    live = {"table.include.list": "public.care_site,public.person,public.provider"}
    assert _pending_backfill(after, _captured(after, live), tables, "initial") == ["person"]
    # Removed again before it was asked: nothing to ask.
    assert _pending_backfill(after, _captured(after, live), ("care_site",), "initial") == []


def test_a_status_from_before_tables_were_recorded_reads_the_live_list() -> None:
    assert _captured({"state": "RUNNING"}, LIVE) == ["care_site", "provider"]


def test_a_table_taken_out_of_the_live_connector_by_hand_is_backfilled_after_repair() -> None:
    recorded = {"tables": ["care_site", "person", "provider"]}
    captured = _captured(recorded, LIVE)
    assert captured == ["care_site", "provider"]
    tables = ("care_site", "person", "provider")
    assert _pending_backfill(recorded, captured, tables, "initial") == ["person"]


def test_no_backfill_when_existing_rows_are_not_wanted_or_nothing_streams() -> None:
    recorded = {"tables": ["care_site"]}
    for mode in ("no_data", "initial_only"):
        assert _pending_backfill(recorded, ["care_site"], ("care_site", "person"), mode) == []
