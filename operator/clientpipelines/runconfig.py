"""The operator -> runner contract: what one pipeline run of a client needs to know.

The operator builds a `RunConfig` from the ClientPipeline and writes it into the
CronJob as environment variables (`to_env`); the runner reads it back (`from_env`)
and hands dbt every name it needs as vars (`dbt_vars`). Each variable name is
written once, here; no side derives a name from the client id by its own rules:
the names come from `clientpipelines.naming`, through this object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from clientpipelines import omop
from clientpipelines.clients.trino import LOGIN_ENV, TrinoLogin
from clientpipelines.naming import ClientNames, InvalidClientId

MODES = ("cdc", "full-reload")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")

# Field -> environment variable. The run reaches Trino as its own principal: the
# token file is the client's ServiceAccount token, which the kubelet mounts (no
# secret is in the contract); the CA is Trino's, to check its certificate.
ENV = {
    "client_id": "CLIENT_ID",
    "ingestion_mode": "INGESTION_MODE",
    "source_schema": "SOURCE_SCHEMA",
    "tables": "SOURCE_TABLES",
    "trino_host": LOGIN_ENV["host"],
    "trino_port": LOGIN_ENV["port"],
    "trino_scheme": LOGIN_ENV["scheme"],
    "trino_token_file": LOGIN_ENV["token_file"],
    "trino_ca_pem": "TRINO_CA_PEM",
    "nessie_url": "NESSIE_URL",
    "nessie_token_file": "NESSIE_TOKEN_FILE",
    "deadline_seconds": "RUN_DEADLINE_SECONDS",
    "dbt_select": "DBT_SELECT",
    "dbt_vars": "DBT_VARS",
    "reports_uri": "REPORTS_URI",
    "reports_s3_endpoint": "REPORTS_S3_ENDPOINT",
}
# The run's id: the Job's name where a Job runs it (the CronJob sets it from the
# Pod's job-name label), so a run's report is found from the Job alone.
RUN_ID_ENV = "RUN_ID"
# Continuous mode (the runner stays up, a micro-batch every interval when there are
# changes): what the operator's Deployment sets, what the runner's flags default to.
RUN_CONTINUOUS_ENV = "RUN_CONTINUOUS"
RUN_INTERVAL_ENV = "RUN_INTERVAL_SECONDS"
# How long a run waits for the client's lock (a continuous pipeline's requested runs
# wait for the batch in progress).
RUN_LOCK_WAIT_ENV = "RUN_LOCK_WAIT_SECONDS"
# Where the runner leaves its outcome for the operator (a Kubernetes termination
# message: the kubelet copies the file into the Pod's status). The CronJob sets the
# container's terminationMessagePath and this variable to the same path.
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "TERMINATION_MESSAGE_PATH"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LOG_LIMIT = 4096


class InvalidRunConfig(ValueError):
    """The run's configuration is missing or malformed; the message names the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # The variables the message is about (it starts with them).
        self.variables = [v.strip() for v in message.split(":", 1)[0].split(",")]


@dataclass(frozen=True)
class RunConfig:
    client_id: str
    ingestion_mode: str
    source_schema: str
    tables: tuple[str, ...]
    trino_host: str
    trino_port: int
    nessie_url: str
    # A run never holds the client's lock longer than this (the Job's activeDeadlineSeconds).
    deadline_seconds: int = 3600
    dbt_select: str | None = None
    dbt_vars: dict[str, Any] = field(default_factory=dict)
    # Where Elementary's reports go: <reports_uri>/<client>/<run id>.html (S3).
    reports_uri: str | None = None
    reports_s3_endpoint: str | None = None
    trino_scheme: str = "http"
    trino_token_file: str | None = None
    trino_ca_pem: str | None = None
    # The run's own token for Nessie (projected like Trino's; audience Nessie).
    nessie_token_file: str | None = None

    def __post_init__(self) -> None:
        try:
            ClientNames(self.client_id)
        except InvalidClientId as exc:
            raise InvalidRunConfig(f"{ENV['client_id']}: {exc}") from exc
        if self.ingestion_mode not in MODES:
            raise InvalidRunConfig(
                f"{ENV['ingestion_mode']}: {self.ingestion_mode!r} is not one of {', '.join(MODES)}"
            )
        if not self.tables or not all(_TABLE.match(t) for t in self.tables):
            raise InvalidRunConfig(
                f"{ENV['tables']}: {','.join(self.tables)!r} must be a comma-separated list of "
                "lower-case table names"
            )
        if unknown := omop.unknown(self.tables):
            raise InvalidRunConfig(
                f"{ENV['tables']}: {', '.join(unknown)} not OMOP CDM v{omop.CDM_VERSION} "
                "table(s); the dbt project models those only"
            )
        if not self.nessie_url:
            raise InvalidRunConfig(f"{ENV['nessie_url']}: required")
        if self.reports_uri and not self.reports_uri.startswith("s3://"):
            raise InvalidRunConfig(f"{ENV['reports_uri']}: {self.reports_uri!r} is not s3://...")

    @property
    def names(self) -> ClientNames:
        return ClientNames(self.client_id)

    @property
    def cdc(self) -> bool:
        return self.ingestion_mode == "cdc"

    def topic(self, table: str) -> str:
        return self.names.topic(self.source_schema, table)

    def report_uri(self, run_id: str) -> str | None:
        """Where the run's Elementary report is uploaded; None when reports are off."""
        if not self.reports_uri:
            return None
        return f"{self.reports_uri.rstrip('/')}/{self.client_id}/{run_id}.html"

    # -- the environment -------------------------------------------------------------------

    def to_env(self) -> dict[str, str]:
        """The variables the CronJob's container gets (unset options are left out)."""
        env = {
            ENV["client_id"]: self.client_id,
            ENV["ingestion_mode"]: self.ingestion_mode,
            ENV["source_schema"]: self.source_schema,
            ENV["tables"]: ",".join(self.tables),
            ENV["trino_host"]: self.trino_host,
            ENV["trino_port"]: str(self.trino_port),
            ENV["nessie_url"]: self.nessie_url,
            ENV["deadline_seconds"]: str(self.deadline_seconds),
        }
        if self.dbt_select:
            env[ENV["dbt_select"]] = self.dbt_select
        if self.dbt_vars:
            env[ENV["dbt_vars"]] = json.dumps(self.dbt_vars, sort_keys=True)
        if self.reports_uri:
            env[ENV["reports_uri"]] = self.reports_uri
        if self.reports_s3_endpoint:
            env[ENV["reports_s3_endpoint"]] = self.reports_s3_endpoint
        env[ENV["trino_scheme"]] = self.trino_scheme
        if self.trino_token_file:
            env[ENV["trino_token_file"]] = self.trino_token_file
        if self.trino_ca_pem:
            env[ENV["trino_ca_pem"]] = self.trino_ca_pem
        if self.nessie_token_file:
            env[ENV["nessie_token_file"]] = self.nessie_token_file
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> RunConfig:
        """Read the contract back; `overrides` (e.g. command-line flags) win when not None."""
        raw: dict[str, Any] = {}
        for f in fields(cls):
            value = overrides.get(f.name)
            raw[f.name] = value if value is not None else env.get(ENV[f.name]) or None
        missing = [
            ENV[n] for n in ("client_id", "tables", "trino_host", "nessie_url") if not raw[n]
        ]
        if missing:
            raise InvalidRunConfig(f"{', '.join(missing)}: required")
        tables = raw["tables"]
        if isinstance(tables, str):
            tables = tuple(t.strip() for t in tables.split(",") if t.strip())
        try:
            dbt_vars = raw["dbt_vars"] or {}
            if isinstance(dbt_vars, str):
                dbt_vars = json.loads(dbt_vars)
            if not isinstance(dbt_vars, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise InvalidRunConfig(f"{ENV['dbt_vars']}: not a JSON object ({exc})") from exc
        numbers: dict[str, int] = {}
        for name, default in (("trino_port", 8080), ("deadline_seconds", 3600)):
            try:
                numbers[name] = int(raw[name] or default)
            except ValueError as exc:
                raise InvalidRunConfig(f"{ENV[name]}: {raw[name]!r} is not a number") from exc
        return cls(
            client_id=str(raw["client_id"]),
            ingestion_mode=str(raw["ingestion_mode"] or "cdc"),
            source_schema=str(raw["source_schema"] or "public"),
            tables=tuple(tables),
            trino_host=str(raw["trino_host"]),
            trino_port=numbers["trino_port"],
            nessie_url=str(raw["nessie_url"]),
            deadline_seconds=numbers["deadline_seconds"],
            dbt_select=raw["dbt_select"],
            dbt_vars=dict(dbt_vars),
            reports_uri=raw["reports_uri"],
            reports_s3_endpoint=raw["reports_s3_endpoint"],
            trino_scheme=str(raw["trino_scheme"] or "http"),
            trino_token_file=raw["trino_token_file"],
            trino_ca_pem=raw["trino_ca_pem"],
            nessie_token_file=raw["nessie_token_file"],
        )

    def trino_login(self, env: Mapping[str, str], scratch: Path) -> TrinoLogin:
        """How the run reaches Trino: where and whose CA from the contract; who from
        the Pod (its token file), or from the environment where no Pod runs it
        (devstack's runs present the administrator's certificate)."""
        base = TrinoLogin.from_env(env, user="clientpipelines-runner")
        ca_file = base.ca_file
        if self.trino_ca_pem and not ca_file:
            path = scratch / "trino-ca.crt"
            path.write_text(self.trino_ca_pem)
            ca_file = str(path)
        return replace(
            base,
            host=self.trino_host,
            port=self.trino_port,
            scheme=self.trino_scheme,
            ca_file=ca_file,
            token_file=self.trino_token_file or base.token_file,
        )

    # -- dbt ---------------------------------------------------------------------------------

    def dbt_variables(self) -> dict[str, Any]:
        """Every name the dbt project uses, from this contract; the user's vars first.

        The same for every run of the client (a run's batch id is not among them:
        runner/dbt.py), so dbt's partial parsing can keep its state between runs.
        """
        names = self.names
        return {
            **self.dbt_vars,
            "client_id": self.client_id,
            "ingestion_mode": self.ingestion_mode,
            "source_schema": self.source_schema,
            "tables": list(self.tables),
            "trino_host": self.trino_host,
            "trino_port": self.trino_port,
            "staging_catalog": names.staging_catalog,
            "lake_schema": names.lake_schema,
            "cdc_catalog": names.cdc_catalog,
            "source_catalog": names.source_catalog,
            "topics": {t: self.topic(t) for t in self.tables},
        }
