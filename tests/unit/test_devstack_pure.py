from __future__ import annotations

import datetime as dt
import random
import uuid

from clientpipelines import omop
from devstack.sampledata import CLINICAL_TABLES, make_row, table_sizes
from devstack.stack import Endpoints, lake_catalog_properties


def _rows(table: str, seed: int, count: int = 500) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    sizes = table_sizes(CLINICAL_TABLES, 1000)
    t = omop.table(table)
    return [make_row(rng, t, i, lambda ref: rng.randint(1, sizes[ref])) for i in range(1, count)]


def test_sample_rows_are_deterministic_from_the_seed() -> None:
    assert _rows("provider", 3) == _rows("provider", 3)
    assert _rows("provider", 3) != _rows("provider", 4)


def test_sample_rows_look_like_real_extracts() -> None:
    provider = omop.table("provider")
    rows = _rows("provider", 5)
    assert all(len(r) == len(provider.columns) for r in rows)
    names = [r[provider.column_names.index("provider_name")] for r in rows]
    assert None in names  # NULLs
    assert any(isinstance(n, str) and not n.isascii() for n in names)  # non-ASCII names
    for r in rows:
        source_value = r[provider.column_names.index("provider_source_value")]
        assert source_value is None or uuid.UUID(str(source_value))
        site = r[provider.column_names.index("care_site_id")]
        assert site is None or 1 <= int(str(site)) <= 100  # an existing care site


def test_every_clinical_table_gets_typed_rows_within_the_cdm_rules() -> None:
    for name in CLINICAL_TABLES:
        table = omop.table(name)
        for row in _rows(name, 9, 50):
            for column, value in zip(table.columns, row, strict=True):
                if column.required:
                    assert value is not None, (name, column.name)
                if isinstance(value, str) and column.length:
                    assert len(value) <= column.length, (name, column.name)
                if column.kind == "datetime" and value is not None:
                    assert isinstance(value, dt.datetime)
                elif column.kind == "date" and value is not None:
                    assert type(value) is dt.date
            start = {c.name: v for c, v in zip(table.columns, row, strict=True)}
            for column_name, value in start.items():
                begin = start.get(column_name.replace("_end_", "_start_"))
                if column_name.endswith("_end_date") and value and begin:
                    assert value >= begin, (name, column_name)


def test_lake_catalog_points_at_the_given_nessie_ref() -> None:
    ep = Endpoints(
        postgres_host="h",
        postgres_port=1,
        postgres_user="u",
        postgres_password="p",
        kafka_bootstrap="k:1",
        connect_url="http://c",
        nessie_url="http://n/api/v2",
        s3_endpoint="http://s3",
        s3_access_key="a",
        s3_secret_key="s",
        s3_region="r",
        warehouse="s3://warehouse/",
        reports="s3://reports/",
        trino_host="t",
        trino_port=2,
    )
    props = lake_catalog_properties(ep, ref="acme-health-staging")
    assert props["iceberg.nessie-catalog.ref"] == "acme-health-staging"
    assert props["iceberg.nessie-catalog.uri"] == "http://n/api/v2"
    assert "connector.name" not in props  # CREATE CATALOG names it in USING
