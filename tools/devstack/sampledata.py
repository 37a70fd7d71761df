"""Sample OMOP CDM v5.4 client data, generated from the CDM's definition.

Every CDM table (clientpipelines.omop) can be created and filled: deterministic from
a seed, with what real extracts have: NULLs in optional columns, non-ASCII names and
text, UUID source values, and references that hold (persons -> visits -> conditions,
drugs, measurements...; providers -> care sites -> locations) among the tables the
client has. Tables without a primary key get REPLICA IDENTITY FULL, as a client must
set for CDC of them. Each client gets its own database (named after the client's SQL
id) and its own login role with the REPLICATION attribute, as a client would grant to
the CDC connector.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from clientpipelines import omop
from clientpipelines.naming import ClientNames
from devstack.stack import Stack

# The tables most tests use: small and quick.
SAMPLE_TABLES = ("provider", "care_site")
# A client with its whole clinical record: every clinical event table, the health
# system tables they reference, and the derived eras (the acceptance test, the demo).
CLINICAL_TABLES = (
    "location",
    "care_site",
    "provider",
    "person",
    "observation_period",
    "visit_occurrence",
    "visit_detail",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "device_exposure",
    "measurement",
    "observation",
    "death",
    "note",
    "specimen",
    "payer_plan_period",
    "condition_era",
)

# Rows per table for `rows` = 1,000 (scaled linearly; at least one).
_SIZES = {
    "location": 100,
    "care_site": 100,
    "provider": 1000,
    "person": 1000,
    "death": 50,
    "note": 500,
    "note_nlp": 500,
    "specimen": 250,
    "fact_relationship": 200,
    "payer_plan_period": 500,
    "cost": 500,
    "episode": 100,
    "episode_event": 200,
    "metadata": 3,
    "cdm_source": 1,
}
# Concept ids as real data carries them (gender, race, visit types, conditions,
# drugs, units...), and 0: "no matching concept".
_CONCEPTS = (
    0,
    8507,
    8532,
    8527,
    9201,
    9202,
    9203,
    32817,
    32020,
    44814724,
    201826,
    320128,
    1503297,
    1125315,
    3004249,
    3027018,
    8876,
    4172703,
    38004451,
)

_FIRST = (
    "José",
    "Zoë",
    "Łukasz",
    "Ngọc Anh",
    "Søren",
    "Aoife",
    "Maël",
    "Dvořák",
    "Émilie",
    "Jürgen",
    "Ólafur",
    "Chloé",
    "Ahmed",
    "Mei",
    "Ravi",
    "Sarah",
    "Иван",
    "Οδυσσέας",
    "María José",
    "O'Brien",
)
_LAST = (
    "García",
    "Müller",
    "Nguyễn",
    "Kowalski",
    "Þórsson",
    "Öztürk",
    "Núñez",
    "Smith",
    "Lefèvre",
    "Ångström",
    "Dubois",
    "Kim",
    "Patel",
    "Щербаков",
    "Παπαδόπουλος",
    "Çelik",
)
_SITES = (
    "Clínica",
    "Hôpital",
    "Krankenhaus",
    "Centro de Saúde",
    "Medical Center",
    "Przychodnia",
    "Gesundheitszentrum",
    "Sjúkrahús",
    "Health Clinic",
)
_CITIES = (
    "São Paulo",
    "Zürich",
    "Kraków",
    "Malmö",
    "Besançon",
    "Reykjavík",
    "Łódź",
    "Córdoba",
    "Gdańsk",
    "Düsseldorf",
    "Springfield",
)
_SPECIALTIES = (
    ("Cardiology", 38004451),
    ("Family Practice", 38004453),
    ("Pédiatrie", 38004477),
    ("Dermatología", 38004452),
    ("Internal Medicine", 38004456),
    ("Oncology", 38004507),
)
_GENDERS = (("M", 8507), ("F", 8532), ("U", 8551))
_PLACES = (("Inpatient", 8717), ("Outpatient", 8756), ("Office", 8940))


@dataclass(frozen=True)
class ClientSource:
    """Where one client's sample source lives and how its connector logs in."""

    client_id: str
    host: str
    port: int
    database: str
    schema: str
    username: str
    password: str

    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.database} "
            f"user={self.username} password={self.password}"
        )


# Keyless tables (omop.ROW_KEYS): the key column that carries the row's number, so
# generated keys are unique.
_ROW_NUMBER_COLUMN = {
    "death": "person_id",
    "fact_relationship": "fact_id_1",
    "episode_event": "event_id",
    "cdm_source": "cdm_source_name",
}
_NULL_RATE = 0.3
_WORDS = (
    "fièvre",
    "Kopfschmerzen",
    "dolor",
    "tosse",
    "ból",
    "зуб",
    "πόνος",
    "chest pain",
    "follow-up",
    "négatif",
    "normal",
    "elevated",
    "Übelkeit",
    "mareo",
    "São",
    "ok",
)


def table_sizes(tables: tuple[str, ...] | list[str], rows: int) -> dict[str, int]:
    """Rows per table for a client of `rows` (persons, providers, events per table)."""
    return {t: max(1, _SIZES.get(t, 1000) * rows // 1000) for t in tables}


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _varchar(rng: random.Random, column: omop.Column, number: int) -> str:
    name = column.name
    if name == "provider_name":
        value = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    elif name == "care_site_name":
        value = f"{rng.choice(_SITES)} {rng.choice(_CITIES)} #{number}"
    elif name == "gender_source_value":
        value = rng.choice(_GENDERS)[0]
    elif name == "specialty_source_value":
        value = rng.choice(_SPECIALTIES)[0]
    elif name == "place_of_service_source_value":
        value = rng.choice(_PLACES)[0]
    elif name in ("city", "county"):
        value = rng.choice(_CITIES)
    elif name.endswith("_source_value"):
        value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    elif column.length is None or column.length >= 250:
        value = _words(rng, rng.randint(3, 40))  # note text, descriptions
    else:
        value = _words(rng, 2)
    return value[: column.length] if column.length else value


def column_value(
    rng: random.Random,
    table: omop.Table,
    column: omop.Column,
    number: int,
    row: dict[str, object],
    pick: Callable[[str], int | None],
) -> object:
    """A value for `column` of row `number`: `pick(table)` gives an existing key of a
    referenced table the client has (None: none there)."""
    name = column.name
    if name in table.primary_key or _ROW_NUMBER_COLUMN.get(table.name) == name:
        return f"Sample CDM {number}" if column.kind == "varchar" else number
    ref = column.references
    if ref and ref in omop.load() and ref != "concept":
        if not column.required and rng.random() < 0.2:
            return None
        key = pick(ref)
        if key is not None or not column.required:
            return key
        return rng.randint(1, 1000)  # a required reference to a table the client lacks
    if not column.required and rng.random() < _NULL_RATE:
        return None
    if column.is_concept:
        return rng.choice(_CONCEPTS)
    kind = column.kind
    if kind in ("integer", "bigint"):
        ranges = {"year_of_birth": (1930, 2020), "month_of_birth": (1, 12), "day_of_birth": (1, 28)}
        low, high = ranges.get(name, (1, 10_000))
        return rng.randint(low, high)
    if kind == "float":
        return Decimal(f"{rng.uniform(0, 500):.3f}")
    if kind == "date":
        start = row.get(name.replace("_end_", "_start_"))
        if name.endswith("_end_date") and isinstance(start, dt.date):
            return start + dt.timedelta(days=rng.randint(0, 60))
        return dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))
    if kind == "datetime":
        day = row.get(name.removesuffix("time"))
        if not isinstance(day, dt.date):
            day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))
        clock = dt.time(
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999)
        )
        return dt.datetime.combine(day, clock)
    return _varchar(rng, column, number)


def make_row(
    rng: random.Random, table: omop.Table, number: int, pick: Callable[[str], int | None]
) -> tuple[object, ...]:
    """One row of `table`, in its column order."""
    row: dict[str, object] = {}
    for column in table.columns:
        row[column.name] = column_value(rng, table, column, number, row, pick)
    return tuple(row.values())


def ddl(table: omop.Table) -> str:
    """CREATE TABLE as OHDSI's Postgres DDL has it (primary keys; no foreign keys, as
    many CDM instances run), plus REPLICA IDENTITY FULL where there is no primary key."""
    columns = [
        f"{c.sql_name} {c.postgres_type}{' NOT NULL' if c.required else ''}" for c in table.columns
    ]
    if table.primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    statement = (
        f"CREATE TABLE IF NOT EXISTS {table.name} (\n    " + ",\n    ".join(columns) + "\n);"
    )
    if not table.primary_key:
        statement += f"\nALTER TABLE {table.name} REPLICA IDENTITY FULL;"
    return statement


class SampleData:
    """Creates client source databases in the stack's Postgres and changes them."""

    def __init__(self, stack: Stack | None = None) -> None:
        self.stack = stack or Stack()
        self.endpoints = self.stack.endpoints()
        self._secrets = self.stack.directory / "clients"
        self.last_changes: _Changer | None = None  # what the last apply_changes did

    def source(self, client_id: str) -> ClientSource:
        names = ClientNames(client_id)
        return ClientSource(
            client_id=client_id,
            host=self.endpoints.postgres_host,
            port=self.endpoints.postgres_port,
            database=names.sql,
            schema="public",
            username=f"{names.sql}_owner",
            password=self._password(client_id),
        )

    def _password(self, client_id: str) -> str:
        path = self._secrets / f"{client_id}.json"
        if path.exists():
            return str(json.loads(path.read_text())["password"])
        self._secrets.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"password": password}, out)
        return password

    def create(
        self,
        client_id: str,
        *,
        rows: int = 2000,
        seed: int = 42,
        replace: bool = False,
        tables: tuple[str, ...] | list[str] = SAMPLE_TABLES,
    ) -> ClientSource:
        """Create (or with `replace`, recreate) the client's database: `tables` (CDM
        tables), filled for a client of `rows` (table_sizes) if they are empty."""
        if unknown := omop.unknown(tables):
            raise ValueError(f"not OMOP CDM tables: {', '.join(unknown)}")
        src = self.source(client_id)
        admin = self.endpoints.postgres_dsn()
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (src.database,)
            ).fetchone()
            if exists and replace:
                _drop_slots(conn, src.database)
                conn.execute(
                    sql.SQL("drop database {} with (force)").format(sql.Identifier(src.database))
                )
                exists = None
            role = sql.Identifier(src.username)
            if conn.execute(
                "select 1 from pg_roles where rolname = %s", (src.username,)
            ).fetchone():
                conn.execute(
                    sql.SQL("alter role {} with login replication password {}").format(
                        role, sql.Literal(src.password)
                    )
                )
            else:
                conn.execute(
                    sql.SQL("create role {} with login replication password {}").format(
                        role, sql.Literal(src.password)
                    )
                )
            if not exists:
                conn.execute(
                    sql.SQL("create database {} owner {}").format(
                        sql.Identifier(src.database), role
                    )
                )
        ordered = omop.in_dependency_order(tables)
        with psycopg.connect(src.dsn()) as conn:
            for name in ordered:
                conn.execute(ddl(omop.table(name)).encode())
            empty = [
                t for t in ordered if not conn.execute(f"select 1 from {t} limit 1").fetchone()
            ]
            self._fill(conn, empty, table_sizes(ordered, rows), seed)
        return src

    def _fill(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        tables: list[str],
        sizes: dict[str, int],
        seed: int,
    ) -> None:
        """COPY each table's rows, parents first; references point into the parents' ranges."""
        rng = random.Random(seed)  # noqa: S311 - deterministic sample data, not secrets

        def pick(ref: str) -> int | None:
            return rng.randint(1, sizes[ref]) if ref in sizes else None

        with conn.cursor() as cur:
            for name in tables:
                table = omop.table(name)
                count = (
                    min(sizes[name], sizes.get("person", sizes[name]))
                    if name == "death"
                    else sizes[name]
                )
                with cur.copy(f"copy {name} ({table.select_list}) from stdin") as copy:
                    for number in range(1, count + 1):
                        copy.write_row(make_row(rng, table, number, pick))

    def tables(self, client_id: str) -> list[str]:
        """The CDM tables the client's database has, parents first."""
        with psycopg.connect(self.source(client_id).dsn()) as conn:
            present = [
                str(r[0])
                for r in conn.execute(
                    "select table_name from information_schema.tables where table_schema = 'public'"
                ).fetchall()
            ]
        return omop.in_dependency_order([t for t in omop.load() if t in present])

    def apply_changes(
        self, client_id: str, *, count: int = 100, seed: int = 7, batch: int = 100
    ) -> dict[str, int]:
        """Apply `count` inserts, updates and deletes (about 3:5:2) spread over every CDM
        table the client has, `batch` per transaction. About one update in ten on a table
        with a primary key changes the key. References stay whole: a row another row
        refers to is neither deleted nor re-keyed."""
        src = self.source(client_id)
        rng = random.Random(seed)  # noqa: S311 - deterministic sample data, not secrets
        done = {"insert": 0, "update": 0, "delete": 0}
        with psycopg.connect(src.dsn()) as conn:
            changer = _Changer(conn, rng, self.tables(client_id))
            self.last_changes = changer
            applied = 0
            while applied < count:
                with conn.transaction():
                    for _ in range(min(batch, count - applied)):
                        kind = rng.choices(("insert", "update", "delete"), (3, 5, 2))[0]
                        table = omop.table(rng.choice(changer.tables))
                        changed = getattr(changer, kind)(table)
                        done[kind] += changed
                        if changed:
                            changer.touched.add(table.name)
                        applied += 1
        return done


Row = tuple[object, ...]


class _Changer:
    """Inserts, updates and deletes on one client's tables, keeping references whole."""

    def __init__(
        self, conn: psycopg.Connection[Row], rng: random.Random, tables: list[str]
    ) -> None:
        self.conn, self.rng, self.tables = conn, rng, tables
        self.touched: set[str] = set()  # tables a change reached
        self.rekeyed = 0  # primary-key updates
        # Who refers to whom: a referenced row is never deleted or re-keyed.
        self.referrers = {
            t: [(r, c.name) for r in tables for c in omop.table(r).columns if c.references == t]
            for t in tables
        }

    def _one(self, query: str, params: tuple[object, ...] = ()) -> Row | None:
        return self.conn.execute(query.encode(), params).fetchone()

    def _max(self, table: str, column: str) -> int:
        row = self._one(f"select coalesce(max({column}), 0) from {table}")
        return int(str(row[0])) if row else 0

    def existing_key(self, table: str) -> int | None:
        """A random existing key of a table with a one-column primary key."""
        key = omop.table(table).primary_key[0]
        top = self._max(table, key)
        if top == 0:
            return None
        row = self._one(
            f"select {key} from {table} where {key} >= %s order by {key} limit 1",
            (self.rng.randint(1, top),),
        )
        return int(str(row[0])) if row else None

    def _pick(self, ref: str) -> int | None:
        return self.existing_key(ref) if ref in self.tables else None

    def _random_row(self, table: omop.Table) -> tuple[str, Row] | None:
        """A random row's key condition and key values."""
        if len(table.primary_key) == 1:
            key = self.existing_key(table.name)
            return None if key is None else (f"{table.primary_key[0]} = %s", (key,))
        row = self._one(
            f"select {', '.join(table.key)} from {table.name} order by random() limit 1"
        )
        if row is None:
            return None
        return " and ".join(f"{k} = %s" for k in table.key), tuple(row)

    def _unreferenced(self, table: omop.Table) -> str:
        """SQL: the row's key is referred to by no other row (single-key tables)."""
        if len(table.primary_key) != 1:
            return ""
        key = table.primary_key[0]
        return "".join(
            f" and not exists (select 1 from {r} as referrer"
            f" where referrer.{c} = {table.name}.{key})"
            for r, c in self.referrers[table.name]
        )

    def insert(self, table: omop.Table) -> int:
        numbered = _ROW_NUMBER_COLUMN.get(table.name) or table.primary_key[0]
        if table.name == "cdm_source":
            return 0  # one row per CDM instance: only updated
        number = self._max(table.name, numbered) + 1
        if table.name == "death" and "person" in self.tables:
            # One death per person: the next person without one, if there is one.
            row = self._one(
                "select min(p.person_id) from person p"
                " where not exists (select 1 from death d where d.person_id = p.person_id)"
            )
            if not row or row[0] is None:
                return 0
            number = int(str(row[0]))
        values = make_row(self.rng, table, number, self._pick)
        placeholders = ", ".join(["%s"] * len(values))
        self.conn.execute(f"insert into {table.name} values ({placeholders})".encode(), values)
        return 1

    def update(self, table: omop.Table) -> int:
        found = self._random_row(table)
        if found is None:
            return 0
        where, params = found
        if len(table.primary_key) == 1 and self.rng.random() < 0.1:
            # A primary-key change: Debezium sends it as a delete and a create.
            key = table.primary_key[0]
            guard = self._unreferenced(table)
            cur = self.conn.execute(
                f"update {table.name} set {key} = %s where {where}{guard}".encode(),
                (self._max(table.name, key) + 1, *params),
            )
            self.rekeyed += cur.rowcount
            return cur.rowcount
        fixed = set(table.key)
        if len(table.key) > 1 and self.rng.random() < 0.3:
            # A keyless row re-keyed: one of its key columns changes (never the one
            # numbering the rows, which keeps keys unique).
            fixed.discard(
                self.rng.choice([k for k in table.key if k != _ROW_NUMBER_COLUMN[table.name]])
            )
        candidates = [c for c in table.columns if c.name not in fixed]
        if not candidates:
            return 0
        chosen = self.rng.sample(candidates, min(len(candidates), self.rng.randint(1, 3)))
        sets = {c.sql_name: column_value(self.rng, table, c, 0, {}, self._pick) for c in chosen}
        assignments = ", ".join(f"{c} = %s" for c in sets)
        cur = self.conn.execute(
            f"update {table.name} set {assignments} where {where}".encode(),
            (*sets.values(), *params),
        )
        return cur.rowcount

    def delete(self, table: omop.Table) -> int:
        found = self._random_row(table)
        if found is None:
            return 0
        where, params = found
        cur = self.conn.execute(
            f"delete from {table.name} where {where}{self._unreferenced(table)}".encode(), params
        )
        return cur.rowcount


def _drop_slots(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """Inactive replication slots on a database block DROP DATABASE; drop them first."""
    for (slot,) in conn.execute(
        "select slot_name from pg_replication_slots where database = %s and not active",
        (database,),
    ).fetchall():
        conn.execute("select pg_drop_replication_slot(%s)", (slot,))
