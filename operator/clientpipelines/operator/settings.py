"""The operator's settings, read once from the environment (the Deployment sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from clientpipelines.clients.trino import TrinoLogin
from clientpipelines.nessie_access import TOKEN_AUDIENCE as NESSIE_TOKEN_AUDIENCE
from clientpipelines.operator.quantity import parse_quantity
from clientpipelines.trino_access import TOKEN_AUDIENCE


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is required")
    return value


@dataclass(frozen=True)
class Settings:
    """Where the platform's services are, and how the operator behaves."""

    connect_url: str
    nessie_url: str
    trino_host: str
    trino_port: int
    kafka_bootstrap: str
    # Properties of the platform's Iceberg catalog (`lake`) without its Nessie ref:
    # the staging catalogs are the same catalog on another branch. Secrets in it
    # are best given as ${ENV:...} references that Trino resolves itself.
    iceberg_properties: dict[str, str]
    # The runner image every pipeline runs unless its spec names another; a spec
    # may name only images that start with one of `allowed_images` (the default
    # image itself is always allowed).
    runner_image: str | None = None
    allowed_images: tuple[str, ...] = ()
    runner_env: dict[str, str] = field(default_factory=dict)
    runner_env_secret: str | None = None
    # Elementary's reports: s3://bucket/prefix (off when empty); the runner's S3
    # credentials come from runner_env_secret (AWS_* keys).
    reports_uri: str | None = None
    reports_s3_endpoint: str | None = None
    trino_user: str = "clientpipelines-operator"
    # Trino over HTTPS: its CA (checked by the operator and given to runs), the
    # operator's client certificate, and the audience of runs' tokens.
    trino_scheme: str = "http"
    trino_ca_file: str | None = None
    trino_cert_file: str | None = None
    trino_key_file: str | None = field(default=None, repr=False)
    trino_token_audience: str = TOKEN_AUDIENCE
    # Nessie with authentication: the operator's own token (a projected ServiceAccount
    # token, read again for each request), and the audience of the tokens runs get.
    # Unset: Nessie is reached without a token, and runs get none.
    nessie_token_file: str | None = None
    nessie_token_audience: str = NESSIE_TOKEN_AUDIENCE
    # The access rules file Trino authorizes with (trino_access.RulesFile) and the
    # administrators it names; unset: the operator grants nothing in Trino.
    trino_rules_file: str | None = None
    trino_admins: tuple[str, ...] = ("admin",)
    # A folder Trino reads (full-reload catalogs' logins, one file each, which the
    # operator writes): the login stays out of CREATE CATALOG's text. Unset: inline.
    trino_credentials_dir: str | None = None
    # Likewise for Kafka Connect (its FileConfigProvider, named `file`): connectors'
    # logins as files, so Connect's stored config (and REST API) holds a reference.
    connect_credentials_dir: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 9090
    # This many failed runs in a row make LastRunSucceeded's reason RunsFailing
    # (ArgoCD: Degraded).
    failed_runs_degraded: int = 3
    # Where failed runs are announced (a Slack incoming webhook or any JSON
    # receiver); it holds a token, so it comes from a Secret and is never logged.
    notify_webhook_url: str | None = field(default=None, repr=False)
    peering: str | None = None
    # WAL a pipeline's replication slot may hold on the client's database before
    # ReplicationSlotHealthy turns False (a spec's ingestion.cdc.maxRetainedWal wins).
    max_retained_wal: int = 1 << 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """From `env` (default: the process environment)."""
        e = os.environ if env is None else env
        namespaces = tuple(n for n in e.get("WATCH_NAMESPACES", "").split(",") if n)
        _get(e, "TRINO_HOST")
        trino = TrinoLogin.from_env(e, user="clientpipelines-operator")
        for name, path in (
            ("TRINO_CA_FILE", trino.ca_file),
            ("TRINO_CLIENT_KEY_FILE", trino.key_file),
            ("NESSIE_TOKEN_FILE", e.get("NESSIE_TOKEN_FILE")),
        ):
            if path and not os.access(path, os.R_OK):
                raise RuntimeError(f"{name}: {path} cannot be read")
        return cls(
            connect_url=_get(e, "CONNECT_URL"),
            nessie_url=_get(e, "NESSIE_URL"),
            trino_host=trino.host,
            trino_port=trino.port,
            trino_user=trino.user,
            trino_scheme=trino.scheme,
            trino_ca_file=trino.ca_file,
            trino_cert_file=trino.cert_file,
            trino_key_file=trino.key_file,
            trino_token_audience=e.get("TRINO_TOKEN_AUDIENCE") or TOKEN_AUDIENCE,
            nessie_token_file=e.get("NESSIE_TOKEN_FILE") or None,
            nessie_token_audience=e.get("NESSIE_TOKEN_AUDIENCE") or NESSIE_TOKEN_AUDIENCE,
            trino_rules_file=e.get("TRINO_ACCESS_RULES_FILE") or None,
            trino_credentials_dir=e.get("TRINO_CREDENTIALS_DIR") or None,
            connect_credentials_dir=e.get("CONNECT_CREDENTIALS_DIR") or None,
            trino_admins=tuple(
                a.strip() for a in e.get("TRINO_ADMINS", "admin").split(",") if a.strip()
            ),
            kafka_bootstrap=_get(e, "KAFKA_BOOTSTRAP"),
            iceberg_properties=dict(json.loads(_get(e, "ICEBERG_CATALOG_PROPERTIES"))),
            runner_image=e.get("RUNNER_IMAGE") or None,
            allowed_images=tuple(
                i.strip() for i in e.get("ALLOWED_RUNNER_IMAGES", "").split(",") if i.strip()
            ),
            runner_env=dict(json.loads(e.get("RUNNER_ENV", "{}"))),
            runner_env_secret=e.get("RUNNER_ENV_SECRET") or None,
            reports_uri=e.get("REPORTS_URI") or None,
            reports_s3_endpoint=e.get("REPORTS_S3_ENDPOINT") or None,
            namespaces=namespaces,
            metrics_port=int(e.get("METRICS_PORT", "9090")),
            failed_runs_degraded=int(e.get("FAILED_RUNS_DEGRADED", "3")),
            notify_webhook_url=e.get("NOTIFY_WEBHOOK_URL") or None,
            peering=e.get("PEERING_NAME") or None,
            max_retained_wal=parse_quantity(e.get("MAX_RETAINED_WAL") or "1Gi"),
        )

    def trino_login(self) -> TrinoLogin:
        """How the operator itself reaches Trino."""
        return TrinoLogin(
            self.trino_host,
            self.trino_port,
            scheme=self.trino_scheme,
            user=self.trino_user,
            ca_file=self.trino_ca_file,
            cert_file=self.trino_cert_file,
            key_file=self.trino_key_file,
        )

    def trino_ca_pem(self) -> str | None:
        """Trino's CA certificate, which runs check Trino's certificate with."""
        if not self.trino_ca_file:
            return None
        with open(self.trino_ca_file) as pem:
            return pem.read()
