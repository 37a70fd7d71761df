from __future__ import annotations

import random
import uuid

from devstack.sampledata import (
    CARE_SITE_COLUMNS,
    PROVIDER_COLUMNS,
    care_site_row,
    provider_row,
)
from devstack.stack import Endpoints, lake_catalog_properties


def _rows(seed: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    return [provider_row(rng, i, 10) for i in range(1, 500)]


def test_sample_rows_are_deterministic_from_the_seed() -> None:
    assert _rows(3) == _rows(3)
    assert _rows(3) != _rows(4)


def test_sample_rows_look_like_real_extracts() -> None:
    rows = _rows(5)
    assert all(len(r) == len(PROVIDER_COLUMNS) for r in rows)
    names = [r[1] for r in rows]
    assert None in names  # NULLs
    assert any(isinstance(n, str) and not n.isascii() for n in names)  # non-ASCII names
    for r in rows:
        uuid.UUID(str(r[8]))  # provider_source_value is a UUID
        assert r[5] is None or 1 <= int(str(r[5])) <= 10  # points at an existing care site
    site = care_site_row(random.Random(1), 7)
    assert len(site) == len(CARE_SITE_COLUMNS)
    assert site[0] == 7


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
