"""The local platform stack: the real services the product talks to, as local processes.

This module is the lifecycle (up, down, status, endpoints); how each service is
run and checked is in `devstack.services`.

PostgreSQL (the clients' source databases), Kafka (one KRaft node), Kafka Connect
with Debezium, Nessie (RocksDB version store), s3proxy (filesystem-backed S3) and
Trino (dynamic catalogs, the platform's `lake` catalog). Each runs from a registry
artifact at a pinned version, on 127.0.0.1, with its data under the run directory.

`up` is idempotent (what runs stays), `down` stops every process group (data kept
unless wiped), `status` reports each service's state, port, PID and version.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clientpipelines.clients.nessie import NessieClient
from clientpipelines.clients.trino import TrinoClient, TrinoLogin
from devstack import artifacts, procs, services
from devstack.paths import cache_root, run_root
from devstack.pki import CertificateAuthority
from devstack.services import (
    POSTGRES_MAJOR,
    REPORTS_BUCKET,
    TRINO_ADMIN,
    TRINO_OPERATOR,
    WAREHOUSE_BUCKET,
    Plan,
    lake_catalog_properties,
    say,
)

# Defaults chosen away from each service's well-known port, so a stack can run
# beside a developer's own Postgres, Kafka or Trino. Each is overridable with
# CLIENTPIPELINES_<NAME>_PORT.
DEFAULT_PORTS = {
    "postgres": 55432,
    "kafka": 59092,
    "kafka_controller": 59093,
    "connect": 58083,
    "nessie": 59120,
    "nessie_management": 59121,
    "s3": 59000,
    "trino": 58080,  # HTTPS: every client connects here
    "trino_internal": 58081,  # HTTP between Trino's own nodes only; clients are refused
}


# The runner image name local pipelines use; the kubelet stand-in runs its
# entrypoint from this checkout instead of pulling it.
LOCAL_RUNNER_IMAGE = "clientpipelines-runner:local"

SERVICES = ("postgres", "s3proxy", "nessie", "kafka", "connect", "trino")


@dataclass(frozen=True)
class Endpoints:
    """How clients (tests, the operator, the runner) reach the running stack."""

    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    kafka_bootstrap: str
    connect_url: str
    nessie_url: str  # REST API v2 base
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    warehouse: str
    reports: str
    trino_host: str
    trino_port: int
    # Trino serves HTTPS with a certificate of the stack's CA; the platform's
    # principals present client certificates (PEM paths), a client's runner its
    # ServiceAccount token; the rules file is what Trino authorizes with.
    trino_ca_file: str = ""
    trino_certs: dict[str, tuple[str, str]] = field(default_factory=dict)
    trino_rules_file: str = ""
    trino_credentials_dir: str = ""
    # Connectors' logins, as files Kafka Connect's FileConfigProvider reads.
    connect_credentials_dir: str = ""
    # The platform principals' Nessie tokens (admin, trino, operator), as files.
    nessie_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def trino_url(self) -> str:
        return f"https://{self.trino_host}:{self.trino_port}"

    def trino_login(self, principal: str = TRINO_ADMIN) -> TrinoLogin:
        """How `principal` (TRINO_ADMIN or TRINO_OPERATOR) reaches Trino."""
        cert, key = self.trino_certs[principal]
        return TrinoLogin(
            self.trino_host,
            self.trino_port,
            scheme="https",
            user=principal,
            ca_file=self.trino_ca_file,
            cert_file=cert,
            key_file=key,
        )

    def trino(self, principal: str = TRINO_ADMIN) -> TrinoClient:
        return self.trino_login(principal).client()

    def nessie(self, principal: str = "admin") -> NessieClient:
        """Nessie as `principal` ("admin", "trino" or "operator")."""
        return NessieClient(self.nessie_url, token_file=self.nessie_tokens[principal])

    def postgres_dsn(self, database: str = "postgres") -> str:
        return (
            f"host={self.postgres_host} port={self.postgres_port} dbname={database} "
            f"user={self.postgres_user} password={self.postgres_password}"
        )


def _ports() -> dict[str, int]:
    return {
        name: int(os.environ.get(f"CLIENTPIPELINES_{name.upper()}_PORT", default))
        for name, default in DEFAULT_PORTS.items()
    }


# Ports picked at random by this process (control planes, Argo CD) avoid these.
procs.reserve_ports(_ports().values())


class Stack:
    """The stack whose data, logs and PIDs live in `directory`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or run_root() / "stack"
        self.ports = _ports()
        self.logs_dir = self.directory / "logs"
        self._pids = self.directory / "pids"

    # -- paths -------------------------------------------------------------------

    def log(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def _pidfile(self, service: str) -> Path:
        return self._pids / f"{service}.pid"

    def data_dir(self, service: str) -> Path:
        path = self.directory / "data" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def postgres_root(self) -> Path:
        # initdb refuses to run as root, so as root the cluster belongs to the
        # `postgres` user, which must be able to reach its data directory: a
        # folder of its own outside root's home.
        if os.geteuid() == 0:
            root = Path("/var/lib/clientpipelines") / f"postgres-{POSTGRES_MAJOR}"
            if self.directory != cache_root() / "run" / "stack":
                # Another stack (CLIENTPIPELINES_RUN, its own ports) beside the default.
                digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:8]
                root = root.with_name(f"{root.name}-{digest}")
            return root
        return self.data_dir("postgres")

    # -- credentials ---------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """Throwaway credentials made on first `up`, kept 0600 beside the data.

        A credential added in a later version is made and kept on the next call.
        """
        path = self.directory / "credentials.json"
        makers: dict[str, Callable[[], str]] = {
            "postgres_password": lambda: secrets.token_urlsafe(18),
            "s3_access_key": lambda: "devstack" + secrets.token_hex(4),
            "s3_secret_key": lambda: secrets.token_urlsafe(24),
            "trino_shared_secret": lambda: secrets.token_urlsafe(32),
        }
        creds: dict[str, str] = dict(json.loads(path.read_text())) if path.exists() else {}
        if all(k in creds for k in makers):
            return creds
        self.directory.mkdir(parents=True, exist_ok=True)
        creds.update({k: make() for k, make in makers.items() if k not in creds})
        tmp = path.with_name(".credentials.json.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(creds, out)
        tmp.replace(path)
        return creds

    def endpoints(self) -> Endpoints:
        creds = self.credentials()
        p = self.ports
        return Endpoints(
            postgres_host="127.0.0.1",
            postgres_port=p["postgres"],
            postgres_user="postgres",
            postgres_password=creds["postgres_password"],
            kafka_bootstrap=f"127.0.0.1:{p['kafka']}",
            connect_url=f"http://127.0.0.1:{p['connect']}",
            nessie_url=f"http://127.0.0.1:{p['nessie']}/api/v2",
            s3_endpoint=f"http://127.0.0.1:{p['s3']}",
            s3_access_key=creds["s3_access_key"],
            s3_secret_key=creds["s3_secret_key"],
            s3_region="us-east-1",
            warehouse=f"s3://{WAREHOUSE_BUCKET}/",
            reports=f"s3://{REPORTS_BUCKET}/",
            trino_host="127.0.0.1",
            trino_port=p["trino"],
            trino_ca_file=str(self.pki.pair.cert),
            trino_certs={
                principal: (str(pair.cert), str(pair.key))
                for principal in (TRINO_ADMIN, TRINO_OPERATOR)
                for pair in [self.pki.issue(f"trino-{principal}", common_name=principal)]
            },
            trino_rules_file=str(self.directory / "trino-access" / "rules.json"),
            trino_credentials_dir=str(self.directory / "trino-credentials"),
            connect_credentials_dir=str(self.directory / "connect-credentials"),
            nessie_tokens=services.nessie_token_files(self),
        )

    @property
    def pki(self) -> CertificateAuthority:
        """The stack's CA: Trino's server certificate, the platform's client certificates."""
        return CertificateAuthority(self.directory / "pki")

    # -- lifecycle -------------------------------------------------------------------

    def up(self, *, timeout: float = 240.0, progress: bool = True) -> float:
        """Start every service that is not running and wait until all are healthy."""
        started = time.monotonic()
        arts = artifacts.ensure_all()
        ep = self.endpoints()
        plans: dict[str, Callable[[], Plan]] = {
            "postgres": lambda: services.postgres_plan(self),
            "s3proxy": lambda: services.s3proxy_plan(self, arts, ep),
            "nessie": lambda: services.nessie_plan(self, arts),
            "kafka": lambda: services.kafka_plan(self, arts),
            "trino": lambda: services.trino_plan(self, arts, ep),
            "connect": lambda: services.connect_plan(self, arts, ep),
        }
        # Connect needs a healthy broker; everything else boots side by side.
        for group in (("postgres", "s3proxy", "nessie", "kafka", "trino"), ("connect",)):
            waiting: list[tuple[str, Callable[[], bool]]] = []
            for service in group:
                pidfile = self._pidfile(service)
                plan = plans[service]()
                if procs.read_pid(pidfile) is None:
                    if progress:
                        say(f"starting {service}")
                    if service == "s3proxy":
                        self._wait_port_free(service)
                    procs.spawn(
                        plan.argv,
                        log=self.log(service),
                        pidfile=pidfile,
                        cwd=plan.cwd,
                        env=plan.env,
                    )
                waiting.append((service, plan.health))
            for service, health in waiting:
                took = procs.wait_healthy(
                    service,
                    health,
                    timeout=timeout,
                    log=self.log(service),
                    pidfile=self._pidfile(service),
                    interval=0.5,
                )
                if progress:
                    say(f"{service} healthy ({took:.1f}s)")
        return time.monotonic() - started

    def _wait_port_free(self, service: str, timeout: float = 120.0) -> None:
        """A server stopped a moment ago leaves its port in TIME_WAIT for a minute, and
        s3proxy binds without SO_REUSEADDR, so it would fail: wait for the port."""
        port = self.port_of(service)
        deadline = time.monotonic() + timeout
        said = False
        while not procs.port_is_free(port):
            if time.monotonic() > deadline:
                raise procs.StartupError(
                    f"{service}: port {port} is still in use after {timeout:.0f}s; "
                    f"set CLIENTPIPELINES_{'S3' if service == 's3proxy' else service.upper()}"
                    "_PORT to use another"
                )
            if not said:
                say(f"waiting for port {port} ({service}) to be released")
                said = True
            time.sleep(1)

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop every service (Trino first, Postgres last); with `wipe`, delete the data."""
        stopped = [s for s in reversed(SERVICES) if self.stop_service(s)]
        if wipe:
            shutil.rmtree(self.directory, ignore_errors=True)
            if os.geteuid() == 0:
                shutil.rmtree(self.postgres_root, ignore_errors=True)
        return stopped

    def running(self) -> list[str]:
        """The services whose process is alive."""
        return [s for s in SERVICES if procs.read_pid(self._pidfile(s)) is not None]

    def stop_service(self, service: str) -> bool:
        """Stop one service (e.g. to test that it heals); `up` starts it again."""
        # SIGTERM asks Postgres for a "smart" shutdown that waits for every client
        # to disconnect; SIGINT is the fast one that still checkpoints cleanly.
        sig = signal.SIGINT if service == "postgres" else signal.SIGTERM
        return procs.stop(self._pidfile(service), timeout=30, sig=sig)

    def port_of(self, service: str) -> int:
        key = {"s3proxy": "s3"}.get(service, service)
        return self.ports[key]

    def status(self) -> list[dict[str, Any]]:
        """One row per service: state, port, PID, version, log."""
        ep = self.endpoints()
        rows = []
        for service in SERVICES:
            pid = procs.read_pid(self._pidfile(service))
            port = self.port_of(service)
            version = None
            healthy = False
            if pid is not None:
                try:
                    version = services.version(self, service, ep)
                    healthy = version is not None
                except Exception:
                    healthy = False
            rows.append(
                {
                    "service": service,
                    "state": "up" if healthy else ("starting" if pid else "down"),
                    "port": port,
                    "pid": pid,
                    "version": version,
                    "rss_mb": round(procs.group_rss_bytes(pid) / 2**20) if pid else 0,
                    "log": str(self.log(service)),
                }
            )
        return rows


def endpoints_json(stack: Stack) -> str:
    """The endpoints for other tools, without the secrets."""
    ep = asdict(stack.endpoints())
    for key in ("postgres_password", "s3_secret_key"):
        ep[key] = "<in credentials.json>"
    return json.dumps(ep, indent=2)


def operator_env(
    ep: Endpoints,
    kubeconfig: Path,
    *,
    drift_interval: float = 300.0,
    metrics_port: int = 9090,
    liveness_port: int = 8080,
) -> dict[str, str]:
    """Environment for running the operator as a local process against this stack."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "CONNECT_URL": ep.connect_url,
        "NESSIE_URL": ep.nessie_url,
        "NESSIE_TOKEN_FILE": ep.nessie_tokens["operator"],
        **ep.trino_login(TRINO_OPERATOR).to_env(),
        # The operator grants each client's runner its catalogs in the file Trino
        # authorizes with (a cluster's operator writes a ConfigMap Trino mounts).
        "TRINO_ACCESS_RULES_FILE": ep.trino_rules_file,
        # Full-reload catalogs' logins, as files Trino reads (not in CREATE CATALOG).
        "TRINO_CREDENTIALS_DIR": ep.trino_credentials_dir,
        # Connectors' logins, as files Kafka Connect reads (not in their configs).
        "CONNECT_CREDENTIALS_DIR": ep.connect_credentials_dir,
        "TRINO_ADMINS": TRINO_ADMIN,
        "KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
        # The staging catalogs are the lake on another branch: the operator sets the ref.
        "ICEBERG_CATALOG_PROPERTIES": json.dumps(
            {
                k: v
                for k, v in lake_catalog_properties(ep).items()
                if k != "iceberg.nessie-catalog.ref"
            }
        ),
        # Runs execute locally (the kubelet stand-in): any local runner tag is fine.
        "RUNNER_IMAGE": LOCAL_RUNNER_IMAGE,
        "ALLOWED_RUNNER_IMAGES": LOCAL_RUNNER_IMAGE.split(":", maxsplit=1)[0] + ":",
        "DRIFT_INTERVAL_SECONDS": str(drift_interval),
        "METRICS_PORT": str(metrics_port),
        "LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness_port}/healthz",
        # As the operator image sets it (images/Dockerfile): see the comment there.
        "MALLOC_ARENA_MAX": "2",
    }
