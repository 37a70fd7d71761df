"""The platform services work as the product needs them (real processes, no fakes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import ClientNames
from clientpipelines.operator import desired
from clientpipelines.operator.desired import java_properties
from clientpipelines.operator.spec import parse_spec
from clientpipelines.trino_access import write_private
from devstack.operator import pipeline_body
from devstack.procs import wait_for
from devstack.sampledata import ClientSource, SampleData
from devstack.stack import Endpoints, Stack, lake_catalog_properties
from devstack.wiring import unwire_client


def unique_client() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client_source(platform: Stack) -> Iterator[ClientSource]:
    data = SampleData(platform)
    client = unique_client()
    src = data.create(client, rows=50, seed=1)
    yield src
    # Whatever a test left (connector, slot, catalogs, branch) goes with the database.
    unwire_client(platform, client)


def debezium_config(src: ClientSource, tables: list[str]) -> dict[str, str]:
    """The connector config the operator would build for this source."""
    body = pipeline_body(src.client_id, src, secret="unused", tables=tables)
    spec = parse_spec(src.client_id, "default", body["spec"])
    return desired.build_connector_config(
        spec, src.username, src.password, Stack().endpoints().kafka_bootstrap
    )


def test_debezium_streams_changes_that_trino_reads_from_kafka(
    client_source: ClientSource, endpoints: Endpoints, trino_client: TrinoClient
) -> None:
    src = client_source
    names = ClientNames(src.client_id)
    connect = KafkaConnectClient(endpoints.connect_url)
    topic = names.topic(src.schema, "provider")
    connect.put_config(names.connector, debezium_config(src, ["provider", "care_site"]))
    try:
        wait_for(
            "the connector and its task to run",
            lambda: (
                (s := connect.status(names.connector))
                and s.state == "RUNNING"
                and [t.state for t in s.tasks] == ["RUNNING"]
            ),
        )
        trino_client.create_catalog(
            names.cdc_catalog,
            "kafka",
            {
                "kafka.nodes": endpoints.kafka_bootstrap,
                "kafka.table-names": topic,
                "kafka.hide-internal-columns": "false",
            },
        )
        table = f'{names.cdc_catalog}.default."{topic}"'

        def messages() -> list[dict[str, Any]]:
            rows = trino_client.query(f"select _message from {table}")
            return [json.loads(r[0]) for r in rows]

        snapshot = wait_for(
            "the snapshot of 50 providers", lambda: m if len(m := messages()) >= 50 else None
        )
        assert len(snapshot) == 50
        assert {m["op"] for m in snapshot} == {"r"}

        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute(
                "insert into provider (provider_id, provider_name, care_site_id)"
                " values (9001, 'Zoë Ångström', 1)"
            )
            conn.execute("update provider set provider_name = 'Zoë Å.' where provider_id = 9001")
            conn.execute("delete from provider where provider_id = 9001")

        def changes() -> list[dict[str, Any]]:
            return [
                m
                for m in messages()
                if (m.get("after") or m.get("before") or {}).get("provider_id") == 9001
            ]

        found = wait_for(
            "insert, update and delete of provider 9001",
            lambda: c if len(c := changes()) >= 3 else None,
        )
        by_op = {m["op"]: m for m in found}
        assert set(by_op) == {"c", "u", "d"}
        assert by_op["c"]["after"]["provider_name"] == "Zoë Ångström"
        assert by_op["u"]["after"]["provider_name"] == "Zoë Å."
        assert by_op["d"]["after"] is None
        assert by_op["d"]["before"]["provider_id"] == 9001
        lsns = [by_op[op]["source"]["lsn"] for op in ("c", "u", "d")]
        assert lsns == sorted(lsns)
        assert all(isinstance(by_op[op]["ts_ms"], int) for op in by_op)
    finally:
        connect.delete(names.connector)
        trino_client.drop_catalog(names.cdc_catalog)


def test_postgres_catalog_reads_the_source_table(
    client_source: ClientSource, endpoints: Endpoints, trino_client: TrinoClient
) -> None:
    src = client_source
    names = ClientNames(src.client_id)
    # The login as Trino reads it from a file (the operator's way: statement text
    # stays in Trino's query history).
    login = Path(endpoints.trino_credentials_dir) / f"{names.source_catalog}.properties"
    write_private(
        login,
        java_properties({"connection-user": src.username, "connection-password": src.password}),
    )
    trino_client.create_catalog(
        names.source_catalog,
        "postgresql",
        {
            "connection-url": f"jdbc:postgresql://{src.host}:{src.port}/{src.database}",
            "credential-provider.type": "FILE",
            "connection-credential-file": str(login),
        },
    )
    try:
        with psycopg.connect(src.dsn()) as conn:
            expected = conn.execute(
                "select provider_id, provider_name from provider order by provider_id"
            ).fetchall()
        rows = trino_client.query(
            f"select provider_id, provider_name from {names.source_catalog}.public.provider"
            " order by provider_id"
        )
        assert rows == [tuple(r) for r in expected]
        assert any(name and not name.isascii() for _, name in rows)
    finally:
        trino_client.drop_catalog(names.source_catalog)
        login.unlink()


def test_iceberg_on_a_nessie_branch_then_merged_into_main(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient
) -> None:
    client = unique_client()
    names = ClientNames(client)
    nessie = endpoints.nessie()
    main = nessie.get_reference("main")
    assert main is not None
    branch = nessie.create_branch(names.staging_branch, main)
    assert branch.hash == main.hash

    trino_client.create_catalog(
        names.staging_catalog,
        "iceberg",
        lake_catalog_properties(endpoints, ref=names.staging_branch),
    )
    schema = names.lake_schema
    try:
        trino_client.query(f"create schema {names.staging_catalog}.{schema}")
        trino_client.query(
            f"create table {names.staging_catalog}.{schema}.care_site"
            " (care_site_id bigint, care_site_name varchar)"
        )
        trino_client.query(
            f"insert into {names.staging_catalog}.{schema}.care_site"
            " values (1, 'Clínica São Paulo'), (2, null)"
        )
        assert trino_client.query(
            f"select * from {names.staging_catalog}.{schema}.care_site order by 1"
        ) == [(1, "Clínica São Paulo"), (2, None)]

        # The data files went to the S3 store.
        files = trino_client.query(
            f'select file_path from {names.staging_catalog}.{schema}."care_site$files"'
        )
        assert files
        assert all(f.startswith(f"{endpoints.warehouse}") for (f,) in files)

        # Branch isolation: main does not see the staging commit yet.
        assert schema not in {r[0] for r in trino_client.query("show schemas from lake")}
        staged = nessie.get_reference(names.staging_branch)
        assert staged is not None
        assert staged.hash != main.hash

        head = nessie.get_reference("main")
        assert head is not None
        merged = nessie.merge(staged, head, message=f"publish {client}")
        assert nessie.get_reference("main") == merged
        assert trino_client.query(f"select count(*) from lake.{schema}.care_site") == [(2,)]
    finally:
        trino_client.drop_catalog(names.staging_catalog)
        current = nessie.get_reference(names.staging_branch)
        if current:
            nessie.delete_branch(current)


def test_nessie_keeps_branches_and_commits_across_a_restart(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient
) -> None:
    nessie = endpoints.nessie()
    main = nessie.get_reference("main")
    assert main is not None
    name = f"{unique_client()}-staging"
    branch = nessie.create_branch(name, main)
    catalog = f"{name.replace('-', '_')}_cat"
    trino_client.create_catalog(catalog, "iceberg", lake_catalog_properties(endpoints, ref=name))
    try:
        trino_client.query(f"create schema {catalog}.keep")
        trino_client.query(f"create table {catalog}.keep.t as select 1 as x")
        before = nessie.get_reference(name)
        assert before is not None
        assert before.hash != branch.hash
        log_before = [c.hash for c in nessie.log(name)]

        assert platform.stop_service("nessie")
        platform.up(progress=False)

        assert nessie.get_reference(name) == before
        assert [c.hash for c in nessie.log(name)] == log_before
        assert trino_client.query(f"select x from {catalog}.keep.t") == [(1,)]
    finally:
        trino_client.drop_catalog(catalog)
        current = nessie.get_reference(name)
        if current:
            nessie.delete_branch(current)
