"""Wire one client's pipeline parts directly (no Kubernetes), with the operator's own code.

For runner tests and benchmarks that need a client's catalogs, connector and branch
but not a control plane: the same parts (ensure and remove) the operator runs.
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from functools import partial
from pathlib import Path

import psycopg

from clientpipelines import omop
from clientpipelines.clients.errors import ServiceError
from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.naming import ClientNames
from clientpipelines.operator import desired
from clientpipelines.operator.parts import PARTS, PartContext, guarded, remove_all
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import parse_spec
from clientpipelines.operator.systems import Credentials, Systems
from clientpipelines.runconfig import ENV, RunConfig
from devstack.operator import pipeline_body
from devstack.sampledata import SAMPLE_TABLES, ClientSource, SampleData
from devstack.stack import Stack, operator_env

# The parts that live outside Kubernetes: what wiring makes without a control plane.
WIRED = tuple(p for p in PARTS if p.outside_kubernetes)


def client_tables(stack: Stack, client_id: str) -> list[str]:
    """The CDM tables the client's sample database has (SAMPLE_TABLES once it is gone)."""
    try:
        return SampleData(stack).tables(client_id) or list(SAMPLE_TABLES)
    except psycopg.OperationalError:
        return list(SAMPLE_TABLES)


def _context(stack: Stack, src: ClientSource, mode: str) -> PartContext:
    settings = Settings.from_env(operator_env(stack.endpoints(), Path("unused")))
    tables = client_tables(stack, src.client_id)
    body = pipeline_body(src.client_id, src, secret="unused", tables=tables, mode=mode)
    spec = parse_spec(src.client_id, "default", body["spec"])
    creds = Credentials(src.username, src.password, "1")
    return PartContext(Systems.from_settings(settings, api=None), spec, creds)


def _ensure(ctx: PartContext) -> None:
    for part in WIRED:
        result = guarded(partial(part.ensure, ctx))
        if not result.ready and result.reason != "ConnectorStarting":
            raise RuntimeError(
                f"{ctx.spec.client_id}: {part.condition} {result.reason}: {result.message}"
            )


def wire_client(
    stack: Stack,
    client_id: str,
    *,
    rows: int = 300,
    mode: str = "cdc",
    seed: int = 42,
    tables: tuple[str, ...] = SAMPLE_TABLES,
) -> ClientSource:
    """Source data (`tables`), catalogs, connector (cdc) and staging branch for `client_id`."""
    src = SampleData(stack).create(client_id, rows=rows, seed=seed, tables=tables)
    _ensure(_context(stack, src, mode))
    return src


def set_mode(stack: Stack, src: ClientSource, mode: str) -> None:
    """Switch the client's ingestion mode the way the operator does on a spec change."""
    _ensure(_context(stack, src, mode))


def run_config(stack: Stack, src: ClientSource, mode: str = "cdc") -> RunConfig:
    """What the operator's CronJob would tell a run of this client."""
    ctx = _context(stack, src, mode)
    return desired.build_run_config(ctx.spec, ctx.systems.settings)


def runner_env(stack: Stack, src: ClientSource, mode: str = "cdc") -> dict[str, str]:
    """The run contract, and a login for a run outside Kubernetes.

    There is no Pod here to mount the client's ServiceAccount tokens, so these runs
    present the platform administrator's certificate (Trino) and token (Nessie);
    runs the operator schedules (tests/acceptance, `make demo`) are the client's
    own principal.
    """
    ep = stack.endpoints()
    return {
        **run_config(stack, src, mode).to_env(),
        **ep.trino_login().to_env(),
        ENV["trino_token_file"]: "",
        ENV["nessie_token_file"]: ep.nessie_tokens["admin"],
    }


def rewire_connector(stack: Stack, src: ClientSource) -> None:
    """The client deleted (Delete policy) and onboarded again, as far as CDC goes.

    Connector and offsets, topics, slot and publication go; the connector comes
    back and snapshots again. The lake keeps what was published.
    """
    ctx = _context(stack, src, "cdc")
    connector = next(p for p in WIRED if p.name == "connector")
    removal = remove_all(ctx, [connector])
    if removal.problems:
        raise RuntimeError(f"{src.client_id}: {'; '.join(removal.problems)}")
    _ensure(ctx)


def wait_for_cdc(
    stack: Stack,
    client_id: str,
    *,
    timeout: float = 120.0,
    quiet_for: float = 3.0,
    tables: list[str] | None = None,
) -> int:
    """Wait until the client's topics (of `tables`, default all its source has) stop
    growing: every change so far delivered."""
    ep = stack.endpoints()
    names = ClientNames(client_id)
    trino = ep.trino()
    connect = KafkaConnectClient(ep.connect_url)
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        status = connect.status(names.connector)
        if status is None or status.state != "RUNNING":
            time.sleep(0.5)
            continue
        topics = [
            f'{names.cdc_catalog}.default."{names.topic("public", t)}"'
            for t in tables or client_tables(stack, client_id)
        ]
        try:
            count = sum(int(trino.query(f"select count(*) from {t}")[0][0]) for t in topics)
        except ServiceError:  # a new connector's topics appear with its first events
            time.sleep(0.5)
            continue
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > 0 and time.monotonic() - stable_since >= quiet_for:
            return count
        time.sleep(0.5)
    raise TimeoutError(f"{client_id}: change events still arriving after {timeout:.0f}s")


def unwire_client(stack: Stack, client_id: str) -> None:
    """Remove everything `wire_client` (or the operator) made for a client, and its source.

    The parts' own `remove`, as deletionPolicy Delete runs it; then the sample database.
    """
    ep = stack.endpoints()
    src = SampleData(stack).source(client_id)
    with psycopg.connect(ep.postgres_dsn(), autocommit=True) as conn:
        has_source = bool(
            conn.execute("select 1 from pg_database where datname = %s", (src.database,)).fetchone()
        )
    removal = remove_all(_context(stack, src, "cdc"), WIRED)
    # Without its database a client has no slot or publication left to drop.
    problems = [
        p
        for p in removal.problems
        if has_source or not p.startswith(("dropped replication slot", "dropped publication"))
    ]
    if problems:
        raise RuntimeError(f"{client_id}: cleanup incomplete: {'; '.join(problems)}")
    with psycopg.connect(ep.postgres_dsn(), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{src.database}" with (force)')
        conn.execute(f'drop role if exists "{src.username}"')


def lake_differences(
    stack: Stack, client_id: str, tables: list[str] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Per table (`tables`, default all the client's source has): (source rows, lake
    rows, rows that differ), compared row by row as multisets (a duplicate counts);
    all zero diffs when equal."""
    ep = stack.endpoints()
    trino = ep.trino()
    src = SampleData(stack).source(client_id)
    schema = ClientNames(client_id).lake_schema
    result = {}
    for name in tables or client_tables(stack, client_id):
        select = f"select {omop.table(name).select_list} from {{}}"
        with psycopg.connect(src.dsn()) as conn:
            expected = Counter(_comparable(r) for r in conn.execute(select.format(name).encode()))
        actual = Counter(
            _comparable(r) for r in trino.query(select.format(f"lake.{schema}.{name}"))
        )
        differ = sum(((expected - actual) + (actual - expected)).values())
        result[name] = (sum(expected.values()), sum(actual.values()), differ)
    return result


def lake_equals_source(stack: Stack, client_id: str) -> bool:
    """Whether every table the client's source has is published as it is (False while
    nothing is published yet: the lake schema does not exist)."""
    try:
        diffs = lake_differences(stack, client_id)
    except ServiceError:
        return False
    return all(d == 0 and n == lake for n, lake, d in diffs.values())


def _comparable(row: tuple[object, ...]) -> tuple[object, ...]:
    """Postgres' NUMERIC (the CDM's float) as the lake's double."""
    return tuple(float(v) if isinstance(v, Decimal) else v for v in row)
