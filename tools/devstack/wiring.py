"""Wire one client's pipeline parts directly (no Kubernetes), with the operator's own code.

For runner tests and benchmarks that need a client's catalogs, connector and branch
but not a control plane: the same `ensure_*` functions the operator calls.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from clientpipelines.clients.kafka import KafkaTopics
from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import ClientNames
from clientpipelines.operator import desired, parts
from clientpipelines.operator.settings import Settings
from devstack.operator import pipeline_body
from devstack.sampledata import ClientSource, SampleData
from devstack.stack import Stack, operator_env


def wire_client(
    stack: Stack, client_id: str, *, rows: int = 300, mode: str = "cdc", seed: int = 42
) -> ClientSource:
    """Source data, catalogs, connector (cdc) and staging branch for `client_id`."""
    src = SampleData(stack).create(client_id, rows=rows, seed=seed)
    systems, spec, creds = _parts(stack, src, mode)
    for result in (
        parts.ensure_catalogs(systems, spec, creds, None),
        parts.ensure_connector(systems, spec, creds, None),
        parts.ensure_branch(systems, spec, None),
    ):
        if not result.condition.status and result.condition.reason != "ConnectorStarting":
            raise RuntimeError(f"{client_id}: {result.condition}")
    return src


def rewire_connector(stack: Stack, src: ClientSource) -> None:
    """The client deleted (Delete policy) and onboarded again, as far as CDC goes.

    Connector and offsets, topics, slot and publication go; the connector comes
    back and snapshots again. The lake keeps what was published.
    """
    systems, spec, creds = _parts(stack, src, "cdc")
    names = spec.names
    systems.connect.remove(names.connector)
    source = systems.source(spec, creds)
    source.drop_slot(names.replication_slot)
    source.drop_publication(names.publication)
    systems.kafka.delete_matching(names.owns_topic)
    result = parts.ensure_connector(systems, spec, creds, None)
    if not result.condition.status and result.condition.reason != "ConnectorStarting":
        raise RuntimeError(f"{src.client_id}: {result.condition}")


def _parts(
    stack: Stack, src: ClientSource, mode: str
) -> tuple[parts.Systems, desired.PipelineSpec, parts.Credentials]:
    settings = Settings.from_env(operator_env(stack.endpoints(), Path("unused")))
    systems = parts.Systems.from_settings(settings, api=None)  # type: ignore[arg-type]
    body = pipeline_body(
        src.client_id, src, secret="unused", tables=["provider", "care_site"], mode=mode
    )
    spec = desired.parse_spec(src.client_id, "default", body["spec"])
    return systems, spec, parts.Credentials(src.username, src.password, "1")


def wait_for_cdc(
    stack: Stack, client_id: str, *, timeout: float = 120.0, quiet_for: float = 3.0
) -> int:
    """Wait until the client's topics stop growing (every change so far delivered)."""
    ep = stack.endpoints()
    names = ClientNames(client_id)
    trino = TrinoClient(ep.trino_host, ep.trino_port)
    connect = KafkaConnectClient(ep.connect_url)
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        status = connect.status(names.connector)
        if status is None or status.state != "RUNNING":
            time.sleep(0.5)
            continue
        count = sum(
            int(
                trino.query(
                    f'select count(*) from {names.cdc_catalog}.default."{names.topic("public", t)}"'
                )[0][0]
            )
            for t in ("provider", "care_site")
        )
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > 0 and time.monotonic() - stable_since >= quiet_for:
            return count
        time.sleep(0.5)
    raise TimeoutError(f"{client_id}: change events still arriving after {timeout:.0f}s")


def unwire_client(stack: Stack, client_id: str) -> None:
    """Remove everything `wire_client` (or the operator) made for a client, and its source."""
    import psycopg  # noqa: PLC0415

    from clientpipelines.clients.errors import ServiceError  # noqa: PLC0415
    from clientpipelines.clients.nessie import NessieClient  # noqa: PLC0415

    ep = stack.endpoints()
    names = ClientNames(client_id)
    KafkaConnectClient(ep.connect_url).remove(names.connector)
    KafkaTopics(ep.kafka_bootstrap).delete_matching(names.owns_topic)
    trino = TrinoClient(ep.trino_host, ep.trino_port)
    for catalog in desired.owned_catalog_names(client_id):
        with contextlib.suppress(ServiceError):
            trino.drop_catalog(catalog)
    nessie = NessieClient(ep.nessie_url)
    for branch in (names.staging_branch, names.run_lock_branch):
        ref = nessie.get_reference(branch)
        if ref is not None:
            nessie.delete_branch(ref)
    src = SampleData(stack).source(client_id)
    deadline = time.monotonic() + 30
    with psycopg.connect(ep.postgres_dsn(), autocommit=True) as conn:
        while (
            time.monotonic() < deadline
            and conn.execute(
                "select 1 from pg_replication_slots where slot_name = %s and active",
                (names.replication_slot,),
            ).fetchone()
        ):
            time.sleep(0.5)
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
            " where slot_name = %s",
            (names.replication_slot,),
        )
        conn.execute(f'drop database if exists "{src.database}" with (force)')
        conn.execute(f'drop role if exists "{src.username}"')


def lake_differences(stack: Stack, client_id: str) -> dict[str, tuple[int, int, int]]:
    """Per table: (source rows, lake rows, rows that differ); all zero diffs when equal."""
    import psycopg  # noqa: PLC0415

    from devstack.sampledata import CARE_SITE_COLUMNS, PROVIDER_COLUMNS  # noqa: PLC0415

    ep = stack.endpoints()
    trino = TrinoClient(ep.trino_host, ep.trino_port)
    src = SampleData(stack).source(client_id)
    schema = ClientNames(client_id).lake_schema
    result = {}
    for table, cols, pk in (
        ("provider", PROVIDER_COLUMNS, "provider_id"),
        ("care_site", CARE_SITE_COLUMNS, "care_site_id"),
    ):
        select = f"select {', '.join(cols)} from {{}} order by {pk}"
        with psycopg.connect(src.dsn()) as conn:
            expected = [tuple(r) for r in conn.execute(select.format(table)).fetchall()]
        actual = trino.query(select.format(f"lake.{schema}.{table}"))
        differ = len(set(expected) ^ set(actual))
        result[table] = (len(expected), len(actual), differ)
    return result
