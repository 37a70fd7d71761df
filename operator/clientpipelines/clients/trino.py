"""Trino over its Python DB-API client: queries and dynamic catalog management."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import requests.utils
import trino
from trino.auth import Authentication, CertificateAuthentication, JWTAuthentication
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


def token_subject(token: str) -> str:
    """The `sub` claim of a JWT, read without checking it (Trino checks it).

    Trino takes the token's subject as the principal and refuses a session whose
    user differs from it, so a client sends that subject as its user.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError("not a JWT with a subject") from exc


# How a process reaches Trino, from its environment (the operator's Deployment, the
# runner's Pod, the CLI, the app): one set of variable names for every client.
LOGIN_ENV = {
    "host": "TRINO_HOST",
    "port": "TRINO_PORT",
    "scheme": "TRINO_HTTP_SCHEME",
    "user": "TRINO_USER",
    "ca_file": "TRINO_CA_FILE",
    "cert_file": "TRINO_CLIENT_CERT_FILE",
    "key_file": "TRINO_CLIENT_KEY_FILE",
    "token_file": "TRINO_TOKEN_FILE",
}


@dataclass(frozen=True)
class TrinoLogin:
    """Where Trino is and who this process is to it.

    A principal is either a client certificate (the platform's own: the operator,
    administrators) or a token file (a client's runner: its ServiceAccount token,
    which the kubelet rotates, so it is read again for every connection). Over
    HTTPS the server's certificate is checked against `ca_file` (or the system's
    trust store).
    """

    host: str
    port: int
    scheme: str = "http"
    user: str = "clientpipelines"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = field(default=None, repr=False)
    token_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, user: str = "clientpipelines") -> TrinoLogin:
        def get(name: str) -> str | None:
            return env.get(LOGIN_ENV[name]) or None

        return cls(
            host=get("host") or "127.0.0.1",
            port=int(get("port") or 8080),
            scheme=get("scheme") or "http",
            user=get("user") or user,
            ca_file=get("ca_file"),
            cert_file=get("cert_file"),
            key_file=get("key_file"),
            token_file=get("token_file"),
        )

    def to_env(self) -> dict[str, str]:
        return {
            LOGIN_ENV[k]: str(v)
            for k, v in (
                ("host", self.host),
                ("port", self.port),
                ("scheme", self.scheme),
                ("user", self.user),
                ("ca_file", self.ca_file),
                ("cert_file", self.cert_file),
                ("key_file", self.key_file),
                ("token_file", self.token_file),
            )
            if v
        }

    def credentials(self) -> tuple[str, Authentication | None]:
        """The user and authentication for one connection (a token is read afresh)."""
        if self.token_file:
            token = Path(self.token_file).read_text().strip()
            return token_subject(token), JWTAuthentication(token)
        if self.cert_file and self.key_file:
            return self.user, CertificateAuthentication(self.cert_file, self.key_file)
        return self.user, None

    @property
    def verify(self) -> bool | str:
        return self.ca_file or True

    def session(self) -> requests.Session:
        """An HTTP session that checks Trino's certificate against `ca_file`.

        requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's own
        CA when it reads the environment (https://github.com/psf/requests/issues/3829),
        so with a CA of its own the session does not read it.
        """
        http = requests.Session()
        http.verify = self.verify
        if self.ca_file:
            http.trust_env = False
        return http

    def requests_env(self, scratch: Path) -> dict[str, str]:
        """For a process whose HTTP clients take the CA only as a session's (dbt-trino):
        where REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set (see `session`), the same
        bundle plus Trino's CA, so both hold."""
        if not self.ca_file:
            return {}
        env = {}
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            bundle = os.environ.get(name)
            if bundle and Path(bundle).is_file():
                combined = scratch / f"{name.lower()}.pem"
                ours = Path(self.ca_file).read_text()
                combined.write_text(Path(bundle).read_text() + "\n" + ours)
                env[name] = str(combined)
        return env

    def dbt_env(self) -> dict[str, str]:
        """The variables dbt's profile (dbt/profiles.yml) reads to connect as this login."""
        user, _ = self.credentials()
        env = {"TRINO_HTTP_SCHEME": self.scheme, "TRINO_USER": user, "TRINO_AUTH_METHOD": "none"}
        if self.scheme == "https":
            # Without a CA of its own, requests' default trust store (an empty
            # `cert` would turn verification off).
            env["TRINO_CA_FILE"] = self.ca_file or requests.utils.DEFAULT_CA_BUNDLE_PATH
        if self.token_file:
            env["TRINO_AUTH_METHOD"] = "jwt"
            env["TRINO_JWT_TOKEN"] = Path(self.token_file).read_text().strip()
        elif self.cert_file and self.key_file:
            env["TRINO_AUTH_METHOD"] = "certificate"
            env["TRINO_CLIENT_CERT_FILE"] = self.cert_file
            env["TRINO_CLIENT_KEY_FILE"] = self.key_file
        return env

    def client(self, request_timeout: float = 60.0) -> TrinoClient:
        return TrinoClient(login=self, request_timeout=request_timeout)


class TrinoClient:
    """One Trino coordinator. Each call opens a short-lived connection (thread-safe)."""

    service = "trino"

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        *,
        user: str = "clientpipelines",
        login: TrinoLogin | None = None,
        request_timeout: float = 60.0,
    ) -> None:
        self.login = login or TrinoLogin(host, port, user=user)
        self.host = self.login.host
        self.port = self.login.port
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
        try:
            user, auth = self.login.credentials()
        except (OSError, ValueError) as exc:  # the token file is missing or unreadable
            raise ServiceUnavailable(self.service, f"no credentials: {exc}") from exc
        conn = trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=self.host,
            port=self.port,
            user=user,
            http_scheme=self.login.scheme,
            auth=auth,
            http_session=self.login.session(),
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
        except trino.exceptions.HttpError as exc:
            # 401/403 before any query: Trino refused who we are (token, certificate).
            text = str(exc)
            if text.startswith(("error 401", "error 403")):
                raise ServiceError(self.service, f"authentication refused ({text[:9]})") from exc
            raise ServiceUnavailable(self.service, text[:120]) from exc
        except trino.exceptions.TrinoConnectionError as exc:
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        except OSError as exc:  # connection refused, DNS, timeouts from requests
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        finally:
            conn.close()

    def catalogs(self) -> set[str]:
        # system.metadata.catalogs, not SHOW CATALOGS: the same list (filtered by the
        # same access control), about 4x faster with hundreds of client catalogs,
        # and every reconcile and removal asks (benchmarks/operator_reconcile.py).
        return {row[0] for row in self.query("SELECT catalog_name FROM system.metadata.catalogs")}

    def has_catalog(self, name: str) -> bool:
        where = f"catalog_name = {quote_literal(name)}"  # quoted: one round trip, no PREPARE
        return bool(self.query(f"SELECT 1 FROM system.metadata.catalogs WHERE {where}"))  # noqa: S608

    def create_catalog(self, name: str, connector: str, properties: Mapping[str, str]) -> None:
        self.query(create_catalog_sql(name, connector, properties))

    def drop_catalog(self, name: str) -> bool:
        """Drop `name`; False if it did not exist."""
        if not self.has_catalog(name):
            return False
        self.query(f"DROP CATALOG IF EXISTS {quote_identifier(name)}")
        return True
