"""Trino over its Python DB-API client: queries and dynamic catalog management."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import trino
from trino.exceptions import TrinoExternalError, TrinoQueryError, TrinoUserError

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_catalog_sql(name: str, connector: str, properties: Mapping[str, str]) -> str:
    """`CREATE CATALOG` text. Catalog and connector names must be plain identifiers."""
    for what, ident in (("catalog", name), ("connector", connector)):
        if not _IDENTIFIER.match(ident):
            raise ValueError(f"{what} name {ident!r} is not a plain lower-case identifier")
    props = ",\n  ".join(
        f"{quote_identifier(k)} = {quote_literal(v)}" for k, v in sorted(properties.items())
    )
    return f"CREATE CATALOG {name} USING {connector}\nWITH (\n  {props}\n)"


class TrinoClient:
    """One Trino coordinator. Each call opens a short-lived connection (thread-safe)."""

    service = "trino"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str = "clientpipelines",
        http_scheme: str = "http",
        auth: Any = None,
        request_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.http_scheme = http_scheme
        self.auth = auth
        self.request_timeout = request_timeout

    def query(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        catalog: str | None = None,
        schema: str | None = None,
    ) -> list[tuple[Any, ...]]:
        return self.query_with_columns(sql, params, catalog=catalog, schema=schema)[1]

    def query_with_columns(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        catalog: str | None = None,
        schema: str | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The rows and their column names."""
        conn = trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=self.host,
            port=self.port,
            user=self.user,
            http_scheme=self.http_scheme,
            auth=self.auth,
            catalog=catalog,
            schema=schema,
            request_timeout=self.request_timeout,
        )
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            rows = [tuple(row) for row in cur.fetchall()]
            return [d[0] for d in cur.description or []], rows
        except TrinoUserError as exc:
            raise ServiceError(self.service, f"{exc.error_name}: {exc.message}") from exc
        except (TrinoExternalError, TrinoQueryError) as exc:
            raise ServiceError(self.service, str(exc)) from exc
        except trino.exceptions.TrinoConnectionError as exc:
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        except OSError as exc:  # connection refused, DNS, timeouts from requests
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        finally:
            conn.close()

    def catalogs(self) -> set[str]:
        return {row[0] for row in self.query("SHOW CATALOGS")}

    def create_catalog(self, name: str, connector: str, properties: Mapping[str, str]) -> None:
        self.query(create_catalog_sql(name, connector, properties))

    def drop_catalog(self, name: str) -> bool:
        """Drop `name`; False if it did not exist."""
        if name not in self.catalogs():
            return False
        self.query(f"DROP CATALOG IF EXISTS {quote_identifier(name)}")
        return True
