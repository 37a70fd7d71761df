"""Source reconciliation's pure parts: canonical text per type, and the bucket comparison."""

from __future__ import annotations

import pytest

from clientpipelines.runner.reconcile import Column, Unsupported, compare, postgres_sql, trino_sql

COLUMNS = [
    Column("provider_id", "bigint"),
    Column("provider_name", "varchar"),
    Column("birth_date", "date"),
    Column("seen_at", "timestamp(6)"),
    Column("amount", "decimal(10,2)"),
    Column("score", "double"),
]


def test_both_engines_print_each_type_the_same_way() -> None:
    keys = COLUMNS[:1]
    pg = postgres_sql('"public"."provider"', keys, COLUMNS)
    tr = trino_sql("lake.acme.provider", keys, COLUMNS)
    assert "to_char(\"birth_date\", 'YYYY-MM-DD')" in pg
    assert 'cast("birth_date" as varchar)' in tr
    assert '("amount"::numeric(10,2))::text' in pg  # the lake's scale on both sides
    assert 'extract(epoch from "seen_at"::timestamp) * 1000000' in pg
    assert "date_diff('microsecond', timestamp '1970-01-01 00:00:00', \"seen_at\")" in tr
    # Floating point is counted, not hashed: engines print doubles differently.
    assert '"score"' not in pg and '"score"' not in tr
    assert pg.count("coalesce(") == tr.count("coalesce(") == 6  # 5 hashed + the key
    with pytest.raises(Unsupported, match="tags"):
        Column("tags", "array(varchar)").trino()


def test_buckets_that_differ_are_named_and_counts_summed() -> None:
    source = [("0a", 10, 123), ("ff", 5, 7)]
    same = compare("provider", source, [("0a", 10, 123), ("ff", 5, 7)], COLUMNS)
    assert same.equal and (same.source_rows, same.lake_rows) == (15, 15)
    assert same.unhashed == ("score",)
    changed = compare("provider", source, [("0a", 10, 124), ("ff", 5, 7), ("10", 1, 1)], COLUMNS)
    assert changed.differing_buckets == ("0a", "10")
    assert "DIFFERENT in 2 of 256 key buckets (0a, 10)" in changed.describe()
