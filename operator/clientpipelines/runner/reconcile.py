"""Source reconciliation: is what `lake` published the client's source, row for row?

Per table, both sides compute the same thing in their own SQL engine and only the
aggregates travel: rows are put in 256 buckets by an md5 of their primary key, and
each bucket gets a row count and the XOR of the rows' content hashes (the first 60
bits of an md5 of a canonical text of every column). Cost: one scan of each side,
no rows leave either database; a differing bucket points at 1/256th of the keys.

Canonical text, so both engines print a value the same way: integers, strings,
booleans and decimals (at the lake's scale) as text, dates as YYYY-MM-DD,
timestamps as microseconds since the epoch, NULL as \\N. Floating-point columns are
left out of the hash (their printed forms differ between engines); counted rows
still cover them.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clientpipelines.clients.postgres import PostgresLogin, SourcePostgres
from clientpipelines.naming import LAKE_CATALOG
from clientpipelines.runconfig import RunConfig

BUCKET_DIGITS = 2  # hex digits of the key's md5: 256 buckets
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_TIMESTAMP = re.compile(r"^timestamp\(\d+\)$")
_TEXTUAL = ("varchar", "char", "bigint", "integer", "smallint", "tinyint", "boolean")
_FLOATS = ("double", "real")


class Unsupported(ValueError):
    """A column type the reconciliation cannot print the same way on both sides."""


@dataclass(frozen=True)
class Column:
    name: str
    lake_type: str  # as Trino's information_schema says: varchar, bigint, decimal(10,2), ...

    def hashed(self) -> bool:
        return not self.lake_type.startswith(_FLOATS)

    def trino(self) -> str:
        c, t = f'"{self.name}"', self.lake_type
        if t.startswith(_TEXTUAL) or t == "date" or _DECIMAL.match(t):
            text = f"cast({c} as varchar)"
        elif _TIMESTAMP.match(t) or t == "timestamp":
            text = (
                f"cast(date_diff('microsecond', timestamp '1970-01-01 00:00:00', {c}) as varchar)"
            )
        else:
            raise Unsupported(f"{self.name}: {t}")
        return f"coalesce({text}, '\\N')"

    def postgres(self) -> str:
        c, t = f'"{self.name}"', self.lake_type
        if t.startswith("boolean"):
            text = f"case when {c} then 'true' when not {c} then 'false' end"
        elif t.startswith(_TEXTUAL):
            text = f"{c}::text"
        elif t == "date":
            text = f"to_char({c}, 'YYYY-MM-DD')"
        elif m := _DECIMAL.match(t):
            text = f"({c}::numeric({m[1]},{m[2]}))::text"
        elif _TIMESTAMP.match(t) or t == "timestamp":
            # extract(epoch) is exact (numeric) from Postgres 14, which bit_xor needs too.
            text = f"((extract(epoch from {c}::timestamp) * 1000000)::bigint)::text"
        else:
            raise Unsupported(f"{self.name}: {t}")
        return f"coalesce({text}, '\\N')"


def trino_sql(table: str, keys: Sequence[Column], columns: Sequence[Column]) -> str:
    """Bucket, count and XOR of row hashes over a lake table (Trino)."""
    return _buckets(table, keys, columns, trino=True)


def postgres_sql(table: str, keys: Sequence[Column], columns: Sequence[Column]) -> str:
    """The same over the client's source table (Postgres)."""
    return _buckets(table, keys, columns, trino=False)


def _buckets(table: str, keys: Sequence[Column], columns: Sequence[Column], *, trino: bool) -> str:
    """Buckets by the key's columns (by every hashed column for a table without one)."""

    def text(cs: Sequence[Column]) -> str:
        return " || '|' || ".join(c.trino() if trino else c.postgres() for c in cs)

    row = text([c for c in columns if c.hashed()])
    key = text(keys) or row
    if trino:
        bucket = f"substr(lower(to_hex(md5(to_utf8({key})))), 1, {BUCKET_DIGITS})"
        digest = f"bitwise_xor_agg(from_base(substr(to_hex(md5(to_utf8({row}))), 1, 15), 16))"
    else:
        # md5 of the UTF-8 bytes, as Trino's to_utf8, whatever the server's encoding.
        bucket = f"substr(md5(convert_to({key}, 'UTF8')), 1, {BUCKET_DIGITS})"
        digest = f"bit_xor(('x' || substr(md5(convert_to({row}, 'UTF8')), 1, 15))::bit(60)::bigint)"
    # Identifiers come from the catalogs (Trino's information_schema, Postgres' keys).
    return f"select {bucket} as bucket, count(*), {digest} from {table} group by 1"  # noqa: S608


@dataclass(frozen=True)
class TableReconciliation:
    table: str
    source_rows: int
    lake_rows: int
    differing_buckets: tuple[str, ...]
    unhashed: tuple[str, ...]  # columns only counted (floating point)

    @property
    def equal(self) -> bool:
        return not self.differing_buckets

    def describe(self) -> str:
        counts = f"{self.table}: source {self.source_rows} rows, lake {self.lake_rows}"
        verdict = "equal"
        if not self.equal:
            shown = ", ".join(self.differing_buckets[:8])
            more = ", ..." if len(self.differing_buckets) > 8 else ""
            verdict = (
                f"DIFFERENT in {len(self.differing_buckets)} of 256 key buckets ({shown}{more})"
            )
        note = f"; not hashed: {', '.join(self.unhashed)}" if self.unhashed else ""
        return f"{counts}: {verdict}{note}"


def compare(
    table: str,
    source: Sequence[tuple[object, ...]],
    lake: Sequence[tuple[object, ...]],
    columns: Sequence[Column],
) -> TableReconciliation:
    """Bucket by bucket (pure)."""
    src = {str(b): (int(n), int(h or 0)) for b, n, h in source}  # type: ignore[call-overload]
    lk = {str(b): (int(n), int(h or 0)) for b, n, h in lake}  # type: ignore[call-overload]
    differing = tuple(sorted(b for b in src.keys() | lk.keys() if src.get(b) != lk.get(b)))
    return TableReconciliation(
        table,
        sum(n for n, _ in src.values()),
        sum(n for n, _ in lk.values()),
        differing,
        tuple(c.name for c in columns if not c.hashed()),
    )


def reconcile_client(config: RunConfig, dsn: str) -> int:
    """Every table of the client, source vs lake; prints a line each. Exit 0 when equal."""
    import psycopg  # noqa: PLC0415
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # Its message can quote the DSN, password included.
        print("error: SOURCE_DSN is not a valid libpq connection string", file=sys.stderr)
        return 2
    source = SourcePostgres(
        PostgresLogin(
            host=str(info.get("host", "localhost")),
            port=int(str(info.get("port", 5432))),
            database=str(info.get("dbname", "")),
            username=str(info.get("user", "")),
            password=str(info.get("password", "")),
            # libpq's default where the DSN says nothing; say verify-full in production.
            sslmode=str(info.get("sslmode", "prefer")),
        )
    )
    trino = config.trino_login(os.environ, Path(tempfile.mkdtemp(prefix="trino-"))).client()
    schema = config.names.lake_schema
    differing = 0
    for table in config.tables:
        columns = [
            Column(str(name), str(kind))
            for name, kind in trino.query(
                f"select column_name, data_type from {LAKE_CATALOG}.information_schema.columns"  # noqa: S608
                " where table_schema = ? and table_name = ? order by ordinal_position",
                (schema, table),
            )
        ]
        if not columns:
            print(f"{table}: not published (no lake.{schema}.{table})")
            differing += 1
            continue
        by_name = {c.name: c for c in columns}
        try:
            keys = [by_name[k] for k in source.primary_key(config.source_schema, table)]
            result = compare(
                table,
                source.query(postgres_sql(f'"{config.source_schema}"."{table}"', keys, columns)),
                trino.query(trino_sql(f"{LAKE_CATALOG}.{schema}.{table}", keys, columns)),
                columns,
            )
        except (KeyError, Unsupported) as exc:
            print(f"{table}: cannot compare: {type(exc).__name__} {exc}", flush=True)
            differing += 1
            continue
        print(result.describe(), flush=True)
        differing += not result.equal
    return 1 if differing else 0
