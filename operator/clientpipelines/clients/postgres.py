"""The client's source Postgres: the replication slot and publication the CDC path owns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable


@dataclass(frozen=True)
class PostgresLogin:
    host: str
    port: int
    database: str
    username: str
    password: str
    sslmode: str = "require"


@dataclass(frozen=True)
class SlotState:
    active: bool  # a walsender (the connector) holds it
    # reserved / extended / unreserved / lost (Postgres 13+): "lost" means WAL the
    # slot needed was removed (max_slot_wal_keep_size): the CDC stream has a gap.
    wal_status: str
    retained_bytes: int


class SourcePostgres:
    service = "postgres"

    def __init__(self, login: PostgresLogin, *, connect_timeout: int = 5) -> None:
        self.login = login
        self.connect_timeout = connect_timeout

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(
                host=self.login.host,
                port=self.login.port,
                dbname=self.login.database,
                user=self.login.username,
                password=self.login.password,
                sslmode=self.login.sslmode,
                connect_timeout=self.connect_timeout,
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            # The message may quote the DSN; report the class of failure only.
            raise ServiceUnavailable(self.service, f"cannot connect: {type(exc).__name__}") from exc

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A connection whose errors are ours: a dropped connection is unavailability,
        anything else (a race with a connector, a missing privilege) a refusal."""
        try:
            with self._connect() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        except psycopg.Error as exc:
            raise ServiceError(
                self.service, f"{type(exc).__name__}: {exc.diag.message_primary}"
            ) from exc

    def query(self, statement: str) -> list[tuple[object, ...]]:
        """Rows of one read-only statement (the reconciliation's aggregates)."""
        with self._session() as conn:
            # Autocommit: every statement is its own transaction, read-only from here.
            conn.execute("set default_transaction_read_only = on")
            return list(conn.execute(statement.encode()).fetchall())

    def primary_key(self, schema: str, table: str) -> list[str]:
        """The table's primary-key columns, in key order; [] when it has none."""
        with self._session() as conn:
            rows = conn.execute(
                "select a.attname from pg_index i"
                " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
                " where i.indrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass"
                " and i.indisprimary order by array_position(i.indkey, a.attnum)",
                (schema, table),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def table_identities(self, schema: str, tables: list[str]) -> dict[str, tuple[str, bool]]:
        """Per existing table: its REPLICA IDENTITY (d, n, f, i) and whether it has a
        primary key. Tables that do not exist are left out."""
        with self._session() as conn:
            rows = conn.execute(
                "select c.relname, c.relreplident::text,"
                " exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)"
                " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')",
                (schema, tables),
            ).fetchall()
        return {str(name): (str(ident), bool(pk)) for name, ident, pk in rows}

    def slot_active(self, slot: str) -> bool | None:
        """None if the slot does not exist, else whether a walsender holds it."""
        with self._session() as conn:
            row = conn.execute(
                "select active from pg_replication_slots where slot_name = %s", (slot,)
            ).fetchone()
        return None if row is None else bool(row[0])

    def slot_state(self, slot: str) -> SlotState | None:
        """The slot's health as Postgres sees it; None if it does not exist.

        Retained WAL is what the server keeps on disk for this slot: from the oldest
        LSN the slot still needs (restart_lsn) to the server's current WAL position.
        WAL is server-wide, so a quiet database's slot grows with its neighbours'
        writes unless its connector confirms positions (heartbeats).
        """
        with self._session() as conn:
            row = conn.execute(
                "select active, wal_status,"
                " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint"
                " from pg_replication_slots where slot_name = %s",
                (slot,),
            ).fetchone()
        if row is None:
            return None
        active, wal_status, retained = row
        return SlotState(bool(active), str(wal_status or ""), int(str(retained)))

    def drop_slot(self, slot: str, *, wait: float = 30.0) -> bool:
        """Drop the slot once no connector holds it; False if it did not exist."""
        deadline = time.monotonic() + wait
        while True:
            active = self.slot_active(slot)
            if active is None:
                return False
            if not active:
                break
            if time.monotonic() > deadline:
                raise ServiceError(self.service, f"replication slot {slot} is still in use")
            time.sleep(0.5)
        with self._session() as conn:
            try:
                conn.execute("select pg_drop_replication_slot(%s)", (slot,))
            except psycopg.errors.UndefinedObject:
                return False
        return True

    def drop_publication(self, publication: str) -> bool:
        with self._session() as conn:
            exists = conn.execute(
                "select 1 from pg_publication where pubname = %s", (publication,)
            ).fetchone()
            if not exists:
                return False
            conn.execute(
                sql.SQL("drop publication if exists {}").format(sql.Identifier(publication))
            )
        return True
