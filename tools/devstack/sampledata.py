"""Sample OMOP client data: `care_site` and `provider`, as real extracts look.

Deterministic from a seed. Rows carry what real extracts have: NULLs in most
columns, non-ASCII names, UUID source values, providers pointing at care sites
(and some at none). Each client gets its own database (named after the client's
SQL id) and its own login role with the REPLICATION attribute, as a client would
grant to the CDC connector.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import sql

from clientpipelines.naming import ClientNames
from devstack.stack import Stack

# The OMOP tables the sample source holds.
SAMPLE_TABLES = ("provider", "care_site")

DDL = """
CREATE TABLE IF NOT EXISTS care_site (
    care_site_id bigint NOT NULL PRIMARY KEY,
    care_site_name varchar(255),
    place_of_service_concept_id integer,
    location_id bigint,
    care_site_source_value varchar(150),
    place_of_service_source_value varchar(150)
);
CREATE TABLE IF NOT EXISTS provider (
    provider_id bigint NOT NULL PRIMARY KEY,
    provider_name varchar(255),
    npi varchar(20),
    dea varchar(20),
    specialty_concept_id integer,
    care_site_id bigint REFERENCES care_site (care_site_id),
    year_of_birth integer,
    gender_concept_id integer,
    provider_source_value varchar(50),
    specialty_source_value varchar(50),
    specialty_source_concept_id integer,
    gender_source_value varchar(50),
    gender_source_concept_id integer
);
"""

CARE_SITE_COLUMNS = (
    "care_site_id",
    "care_site_name",
    "place_of_service_concept_id",
    "location_id",
    "care_site_source_value",
    "place_of_service_source_value",
)
PROVIDER_COLUMNS = (
    "provider_id",
    "provider_name",
    "npi",
    "dea",
    "specialty_concept_id",
    "care_site_id",
    "year_of_birth",
    "gender_concept_id",
    "provider_source_value",
    "specialty_source_value",
    "specialty_source_concept_id",
    "gender_source_value",
    "gender_source_concept_id",
)

_INSERT_CARE_SITE = sql.SQL("insert into care_site values ({})").format(
    sql.SQL(", ").join(sql.Placeholder() * len(CARE_SITE_COLUMNS))
)
_INSERT_PROVIDER = sql.SQL("insert into provider values ({})").format(
    sql.SQL(", ").join(sql.Placeholder() * len(PROVIDER_COLUMNS))
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


T = TypeVar("T")


def _maybe(rng: random.Random, value: T, null_rate: float) -> T | None:
    return None if rng.random() < null_rate else value


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def care_site_row(rng: random.Random, care_site_id: int) -> tuple[object, ...]:
    place, place_concept = rng.choice(_PLACES)
    return (
        care_site_id,
        _maybe(rng, f"{rng.choice(_SITES)} {rng.choice(_CITIES)} #{care_site_id}", 0.1),
        _maybe(rng, place_concept, 0.4),
        _maybe(rng, rng.randint(1, 50_000), 0.6),
        _uuid(rng),
        _maybe(rng, place, 0.5),
    )


def provider_row(rng: random.Random, provider_id: int, care_site_ids: int) -> tuple[object, ...]:
    specialty, specialty_concept = rng.choice(_SPECIALTIES)
    gender, gender_concept = rng.choice(_GENDERS)
    return (
        provider_id,
        _maybe(rng, f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", 0.05),
        _maybe(rng, f"{rng.randint(1_000_000_000, 1_999_999_999)}", 0.3),
        _maybe(
            rng, f"{rng.choice('ABFM')}{rng.choice('ABCDEFGH')}{rng.randint(10**6, 10**7 - 1)}", 0.7
        ),
        _maybe(rng, specialty_concept, 0.3),
        _maybe(rng, rng.randint(1, care_site_ids), 0.15),
        _maybe(rng, rng.randint(1940, 1998), 0.4),
        _maybe(rng, gender_concept, 0.2),
        _uuid(rng),
        _maybe(rng, specialty, 0.3),
        _maybe(rng, rng.randint(1, 2_000_000_000), 0.8),
        _maybe(rng, gender, 0.2),
        _maybe(rng, 0, 0.5),
    )


def _rows(
    rng: random.Random, start: int, count: int, make: Callable[..., tuple[object, ...]], *extra: int
) -> Iterator[tuple[object, ...]]:
    for i in range(start, start + count):
        yield make(rng, i, *extra)


class SampleData:
    """Creates client source databases in the stack's Postgres and changes them."""

    def __init__(self, stack: Stack | None = None) -> None:
        self.stack = stack or Stack()
        self.endpoints = self.stack.endpoints()
        self._secrets = self.stack.directory / "clients"

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
        self, client_id: str, *, rows: int = 2000, seed: int = 42, replace: bool = False
    ) -> ClientSource:
        """Create (or with `replace`, recreate) the client's database with `rows` providers."""
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
        with psycopg.connect(src.dsn()) as conn:
            conn.execute(DDL)
            count = conn.execute("select count(*) from provider").fetchone()
            if count and count[0] == 0:
                self._fill(conn, rows, seed)
        return src

    def _fill(self, conn: psycopg.Connection[tuple[object, ...]], rows: int, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - deterministic sample data, not secrets
        care_sites = max(1, rows // 10)
        with conn.cursor() as cur:
            with cur.copy(f"copy care_site ({', '.join(CARE_SITE_COLUMNS)}) from stdin") as copy:
                for row in _rows(rng, 1, care_sites, care_site_row):
                    copy.write_row(row)
            with cur.copy(f"copy provider ({', '.join(PROVIDER_COLUMNS)}) from stdin") as copy:
                for row in _rows(rng, 1, rows, provider_row, care_sites):
                    copy.write_row(row)

    def apply_changes(
        self, client_id: str, *, count: int = 100, seed: int = 7, batch: int = 100
    ) -> dict[str, int]:
        """Apply `count` inserts, updates and deletes (about 3:5:2), `batch` per transaction."""
        src = self.source(client_id)
        rng = random.Random(seed)  # noqa: S311 - deterministic sample data, not secrets
        done = {"insert": 0, "update": 0, "delete": 0}
        with psycopg.connect(src.dsn()) as conn:
            max_site, max_provider = conn.execute(
                "select (select coalesce(max(care_site_id), 0) from care_site),"
                " (select coalesce(max(provider_id), 0) from provider)"
            ).fetchone() or (0, 0)
            applied = 0
            while applied < count:
                with conn.transaction():
                    for _ in range(min(batch, count - applied)):
                        kind = rng.choices(("insert", "update", "delete"), (3, 5, 2))[0]
                        done[kind] += self._change(conn, rng, kind, max_site, max_provider)
                        if kind == "insert":
                            max_provider += 1
                        applied += 1
        return done

    def _change(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        rng: random.Random,
        kind: str,
        max_site: int,
        max_provider: int,
    ) -> int:
        if kind == "insert":
            if rng.random() < 0.2:
                site = conn.execute(
                    "select coalesce(max(care_site_id), 0) + 1 from care_site"
                ).fetchone()
                assert site is not None
                conn.execute(_INSERT_CARE_SITE, care_site_row(rng, int(str(site[0]))))
            conn.execute(_INSERT_PROVIDER, provider_row(rng, max_provider + 1, max(1, max_site)))
            return 1
        target = rng.randint(1, max(1, max_provider))
        if kind == "update":
            if rng.random() < 0.2:
                cur = conn.execute(
                    "update care_site set care_site_name = %s where care_site_id = %s",
                    (
                        f"{rng.choice(_SITES)} {rng.choice(_CITIES)} (renamed)",
                        rng.randint(1, max(1, max_site)),
                    ),
                )
            else:
                cur = conn.execute(
                    "update provider set provider_name = %s, year_of_birth = %s,"
                    " specialty_source_value = %s where provider_id = %s",
                    (
                        f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                        _maybe(rng, rng.randint(1940, 1998), 0.3),
                        _maybe(rng, rng.choice(_SPECIALTIES)[0], 0.3),
                        target,
                    ),
                )
            return cur.rowcount
        cur = conn.execute("delete from provider where provider_id = %s", (target,))
        return cur.rowcount


def _drop_slots(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """Inactive replication slots on a database block DROP DATABASE; drop them first."""
    for (slot,) in conn.execute(
        "select slot_name from pg_replication_slots where database = %s and not active",
        (database,),
    ).fetchall():
        conn.execute("select pg_drop_replication_slot(%s)", (slot,))
