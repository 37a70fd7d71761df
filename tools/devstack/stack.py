"""The local platform stack: the real services the product talks to, as local processes.

PostgreSQL (the clients' source databases), Kafka (one KRaft node), Kafka Connect
with Debezium, Nessie (RocksDB version store), s3proxy (filesystem-backed S3) and
Trino (dynamic catalogs, the platform's `lake` catalog). Each runs from a registry
artifact at a pinned version, on 127.0.0.1, with its data under the run directory.

`up` is idempotent (what runs stays), `down` stops every process group (data kept
unless wiped), `status` reports each service's state, port, PID and version.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devstack import artifacts, procs
from devstack.paths import run_root

POSTGRES_MAJOR = 15
POSTGRES_BIN = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")
WAREHOUSE_BUCKET = "warehouse"

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
    "trino": 58080,
}

LAKE_S3_ACCESS_KEY_ENV = "LAKE_S3_ACCESS_KEY"
LAKE_S3_SECRET_KEY_ENV = "LAKE_S3_SECRET_KEY"  # noqa: S105 - a variable's name

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
    trino_host: str
    trino_port: int

    @property
    def trino_url(self) -> str:
        return f"http://{self.trino_host}:{self.trino_port}"

    def postgres_dsn(self, database: str = "postgres") -> str:
        return (
            f"host={self.postgres_host} port={self.postgres_port} dbname={database} "
            f"user={self.postgres_user} password={self.postgres_password}"
        )


@dataclass(frozen=True)
class Plan:
    """How to run one service and how to know it is healthy."""

    argv: list[str]
    health: Callable[[], bool]
    cwd: Path | None = None
    env: dict[str, str] | None = None


def _ports() -> dict[str, int]:
    return {
        name: int(os.environ.get(f"CLIENTPIPELINES_{name.upper()}_PORT", default))
        for name, default in DEFAULT_PORTS.items()
    }


class Stack:
    """The stack whose data, logs and PIDs live in `directory`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or run_root() / "stack"
        self.ports = _ports()
        self._logs = self.directory / "logs"
        self._pids = self.directory / "pids"

    # -- paths -------------------------------------------------------------------

    def log(self, service: str) -> Path:
        return self._logs / f"{service}.log"

    def _pidfile(self, service: str) -> Path:
        return self._pids / f"{service}.pid"

    def _data(self, service: str) -> Path:
        path = self.directory / "data" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def _postgres_root(self) -> Path:
        # initdb refuses to run as root, so as root the cluster belongs to the
        # `postgres` user, which must be able to reach its data directory: a
        # folder of its own outside root's home.
        if os.geteuid() == 0:
            return Path("/var/lib/clientpipelines") / f"postgres-{POSTGRES_MAJOR}"
        return self._data("postgres")

    # -- credentials ---------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        """Throwaway credentials made on first `up`, kept 0600 beside the data."""
        path = self.directory / "credentials.json"
        if path.exists():
            return dict(json.loads(path.read_text()))
        self.directory.mkdir(parents=True, exist_ok=True)
        creds = {
            "postgres_password": secrets.token_urlsafe(18),
            "s3_access_key": "devstack" + secrets.token_hex(4),
            "s3_secret_key": secrets.token_urlsafe(24),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(creds, out)
        return creds

    def endpoints(self) -> Endpoints:
        creds = self._credentials()
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
            trino_host="127.0.0.1",
            trino_port=p["trino"],
        )

    # -- lifecycle -------------------------------------------------------------------

    def up(self, *, timeout: float = 240.0, progress: bool = True) -> float:
        """Start every service that is not running and wait until all are healthy."""
        started = time.monotonic()
        arts = artifacts.ensure_all()
        ep = self.endpoints()
        plans: dict[str, Callable[[], Plan]] = {
            "postgres": self._postgres_plan,
            "s3proxy": lambda: self._s3proxy_plan(arts, ep),
            "nessie": lambda: self._nessie_plan(arts),
            "kafka": lambda: self._kafka_plan(arts),
            "trino": lambda: self._trino_plan(arts, ep),
            "connect": lambda: self._connect_plan(arts, ep),
        }
        # Connect needs a healthy broker; everything else boots side by side.
        for group in (("postgres", "s3proxy", "nessie", "kafka", "trino"), ("connect",)):
            waiting: list[tuple[str, Callable[[], bool]]] = []
            for service in group:
                pidfile = self._pidfile(service)
                plan = plans[service]()
                if procs.read_pid(pidfile) is None:
                    if progress:
                        _say(f"starting {service}")
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
                    _say(f"{service} healthy ({took:.1f}s)")
        self._post_start(ep)
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
                _say(f"waiting for port {port} ({service}) to be released")
                said = True
            time.sleep(1)

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop every service (Trino first, Postgres last); with `wipe`, delete the data."""
        stopped = [s for s in reversed(SERVICES) if self.stop_service(s)]
        if wipe:
            shutil.rmtree(self.directory, ignore_errors=True)
            if os.geteuid() == 0:
                shutil.rmtree(self._postgres_root, ignore_errors=True)
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
                    version = self._version(service, ep)
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

    # -- one plan per service: (argv, env, health check) ---------------------------------

    def _postgres_plan(self) -> Plan:
        root = self._postgres_root
        data = root / "data"
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            as_postgres = ["runuser", "-u", "postgres", "--"]
        if not (data / "PG_VERSION").exists():
            self._initdb(root, data, as_postgres)
        argv = [
            *as_postgres,
            str(POSTGRES_BIN / "postgres"),
            "-D",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.ports['postgres']}",
            "-c",
            f"unix_socket_directories={root / 'socket'}",
            # Logical decoding for Debezium, with room for many clients' slots.
            "-c",
            "wal_level=logical",
            "-c",
            "max_replication_slots=256",
            "-c",
            "max_wal_senders=256",
            "-c",
            "max_connections=600",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
        ]
        return Plan(argv, self._postgres_ready)

    def _initdb(self, root: Path, data: Path, as_postgres: list[str]) -> None:
        _say("initialising the Postgres cluster (first start)")
        root.mkdir(parents=True, exist_ok=True)
        (root / "socket").mkdir(exist_ok=True)
        pwfile = root / ".pwfile"
        pwfile.write_text(self._credentials()["postgres_password"] + "\n")
        pwfile.chmod(0o600)
        if as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (root, root / "socket", pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            subprocess.run(
                [
                    *as_postgres,
                    str(POSTGRES_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise procs.StartupError(
                f"initdb failed:\n{exc.stderr.decode(errors='replace')}"
            ) from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _postgres_ready(self) -> bool:
        import psycopg  # noqa: PLC0415 - only needed once Postgres runs

        with psycopg.connect(self.endpoints().postgres_dsn(), connect_timeout=2) as conn:
            return conn.execute("select 1").fetchone() == (1,)

    def _s3proxy_plan(self, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
        data = self._data("s3proxy")
        # With the filesystem provider a bucket is a folder.
        (data / WAREHOUSE_BUCKET).mkdir(exist_ok=True)
        conf = self.directory / "conf" / "s3proxy.properties"
        _write(
            conf,
            {
                "s3proxy.endpoint": ep.s3_endpoint,
                "s3proxy.authorization": "aws-v2-or-v4",
                # Recent AWS SDKs (Trino's) send x-amz-optional-object-attributes on
                # ListObjectsV2, which s3proxy otherwise rejects.
                "s3proxy.ignore-unknown-headers": "true",
                "s3proxy.identity": ep.s3_access_key,
                "s3proxy.credential": ep.s3_secret_key,
                "jclouds.provider": "filesystem-nio2",
                # Required by s3proxy even for the filesystem provider, which ignores them.
                "jclouds.identity": ep.s3_access_key,
                "jclouds.credential": ep.s3_secret_key,
                "jclouds.filesystem.basedir": str(data),
            },
            private=True,
        )
        argv = [
            str(artifacts.java_home(17) / "bin" / "java"),
            "-Xmx256m",
            "-jar",
            str(arts.s3proxy_jar),
            "--properties",
            str(conf),
        ]
        return Plan(argv, lambda: procs.http_status(ep.s3_endpoint + "/") in (200, 403))

    def _nessie_plan(self, arts: artifacts.Artifacts) -> Plan:
        data = self._data("nessie")
        argv = [
            str(artifacts.java_home(17) / "bin" / "java"),
            "-Xmx512m",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.ports['nessie']}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.ports['nessie_management']}",
            # A persistent version store: a restart keeps every branch and commit.
            "-Dnessie.version.store.type=ROCKSDB",
            f"-Dnessie.version.store.persist.rocks.database-path={data / 'rocksdb'}",
            "-Dquarkus.log.console.json=false",
            "-Dquarkus.otel.sdk.disabled=true",
            "-jar",
            str(arts.nessie_jar),
        ]
        url = f"http://127.0.0.1:{self.ports['nessie']}/api/v2/config"
        return Plan(argv, lambda: procs.http_status(url) == 200)

    def _kafka_config(self) -> Path:
        data = self._data("kafka")
        conf = self.directory / "conf" / "kafka.properties"
        p = self.ports
        _write(
            conf,
            {
                "process.roles": "broker,controller",
                "node.id": "1",
                "controller.quorum.bootstrap.servers": f"127.0.0.1:{p['kafka_controller']}",
                "listeners": f"PLAINTEXT://127.0.0.1:{p['kafka']},CONTROLLER://127.0.0.1:{p['kafka_controller']}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p['kafka']},CONTROLLER://127.0.0.1:{p['kafka_controller']}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": str(data / "logs"),
                "num.partitions": "1",
                "offsets.topic.replication.factor": "1",
                "transaction.state.log.replication.factor": "1",
                "transaction.state.log.min.isr": "1",
                "share.coordinator.state.topic.replication.factor": "1",
                "share.coordinator.state.topic.min.isr": "1",
                "group.initial.rebalance.delay.ms": "0",
                "auto.create.topics.enable": "true",
            },
        )
        return conf

    def _kafka_java(self, arts: artifacts.Artifacts, heap: str, main: str, *args: str) -> list[str]:
        log4j = self.directory / "conf" / "log4j2.properties"
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(_LOG4J2)
        return [
            str(artifacts.java_home(17) / "bin" / "java"),
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{arts.kafka_libs}/*",
            main,
            *args,
        ]

    def _kafka_plan(self, arts: artifacts.Artifacts) -> Plan:
        conf = self._kafka_config()
        data = self._data("kafka") / "logs"
        if not (data / "meta.properties").exists():
            # KRaft storage is formatted once; later starts keep topics and offsets.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                self._kafka_java(
                    arts,
                    "256m",
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    cluster_id,
                    "-c",
                    str(conf),
                ),
                check=True,
                capture_output=True,
            )
        argv = self._kafka_java(arts, "768m", "kafka.Kafka", str(conf))
        return Plan(
            argv, lambda: "Kafka Server started" in self.log("kafka").read_text(errors="replace")
        )

    def _connect_plan(self, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
        conf = self.directory / "conf" / "connect-distributed.properties"
        _write(
            conf,
            {
                "bootstrap.servers": ep.kafka_bootstrap,
                "group.id": "clientpipelines-connect",
                "listeners": ep.connect_url,
                "rest.advertised.host.name": "127.0.0.1",
                "rest.advertised.port": str(self.ports["connect"]),
                "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable": "false",
                "value.converter.schemas.enable": "false",
                "config.storage.topic": "_connect-configs",
                "offset.storage.topic": "_connect-offsets",
                "status.storage.topic": "_connect-status",
                "config.storage.replication.factor": "1",
                "offset.storage.replication.factor": "1",
                "status.storage.replication.factor": "1",
                # Commit source offsets often: a restarted worker re-sends little.
                "offset.flush.interval.ms": "1000",
                "plugin.path": str(arts.connect_plugins),
                "plugin.discovery": "hybrid_warn",
            },
        )
        argv = self._kafka_java(
            arts, "768m", "org.apache.kafka.connect.cli.ConnectDistributed", str(conf)
        )

        def healthy() -> bool:
            plugins = procs.http_json(f"{ep.connect_url}/connector-plugins")
            return any(p["class"].endswith("PostgresConnector") for p in plugins)

        return Plan(argv, healthy)

    def _trino_plan(self, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
        data = self._data("trino")
        catalogs = data / "etc" / "catalog"
        catalogs.mkdir(parents=True, exist_ok=True)
        # The platform's own catalog; clients' catalogs are created at run time
        # (CREATE CATALOG) and land in the same folder, so they survive restarts.
        _write(
            catalogs / "lake.properties",
            {"connector.name": "iceberg", **lake_catalog_properties(ep)},
            private=True,
        )
        # Trino reads the catalog store's settings from etc/catalog-store.properties
        # relative to its working directory, so it runs in its data folder.
        _write(data / "etc" / "catalog-store.properties", {"catalog.config-dir": str(catalogs)})
        conf = data / "etc" / "config.properties"
        port = self.ports["trino"]
        _write(
            conf,
            {
                "coordinator": "true",
                "node-scheduler.include-coordinator": "true",
                "http-server.http.port": str(port),
                "discovery.uri": f"http://127.0.0.1:{port}",
                "catalog.management": "dynamic",
                "catalog.store": "file",
                "plugin.dir": str(arts.trino_home / "plugin"),
                # Trino stops writing to stdout once started; its server log goes here.
                "log.path": str(self._logs / "trino-server.log"),
                "query.max-memory": "2GB",
                "query.max-memory-per-node": "1536MB",
                # Two cores: fewer threads than Trino's defaults, which assume a server.
                "task.concurrency": "2",
                "task.max-worker-threads": "8",
            },
        )
        java = artifacts.java_home(24) / "bin" / "java"
        argv = [
            str(java),
            "-server",
            "-Xmx3g",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-OmitStackTraceInFastThrow",
            "-XX:ReservedCodeCacheSize=256M",
            "-Djdk.attach.allowAttachSelf=true",
            "-XX:+EnableDynamicAgentLoading",
            "-Dfile.encoding=UTF-8",
            "--enable-native-access=ALL-UNNAMED",
            "-Dnode.environment=clientpipelines",
            "-Dnode.id=devstack",
            f"-Dnode.data-dir={data}",
            f"-Dconfig={conf}",
            "-cp",
            f"{arts.trino_home / 'lib'}/*",
            "io.trino.server.TrinoServer",
        ]

        def healthy() -> bool:
            info = procs.http_json(f"{ep.trino_url}/v1/info")
            return info.get("starting") is False

        # The S3 keys reach Trino as environment variables that catalogs name as
        # ${ENV:...}: no CREATE CATALOG text (query history, web UI) ever holds them.
        env = {
            **os.environ,
            LAKE_S3_ACCESS_KEY_ENV: ep.s3_access_key,
            LAKE_S3_SECRET_KEY_ENV: ep.s3_secret_key,
        }
        return Plan(argv, healthy, cwd=data, env=env)

    def _post_start(self, ep: Endpoints) -> None:
        """Nothing to do yet: every service creates its own state on first start."""

    def _version(self, service: str, ep: Endpoints) -> str | None:
        if service == "postgres":
            import psycopg  # noqa: PLC0415

            with psycopg.connect(ep.postgres_dsn(), connect_timeout=2) as conn:
                row = conn.execute("show server_version").fetchone()
                return str(row[0]) if row else None
        if service == "trino":
            return str(procs.http_json(f"{ep.trino_url}/v1/info")["nodeVersion"]["version"])
        if service == "connect":
            return str(procs.http_json(ep.connect_url)["version"])
        if service == "nessie":
            config = procs.http_json(f"{ep.nessie_url}/config")
            return str(config.get("actualApiVersion") and artifacts.NESSIE_VERSION)
        if service == "kafka":
            log = self.log("kafka").read_text(errors="replace")
            return artifacts.KAFKA_VERSION if "Kafka Server started" in log else None
        if service == "s3proxy":
            code = procs.http_status(ep.s3_endpoint + "/")
            return artifacts.S3PROXY_VERSION if code in (200, 403) else None
        return None


def lake_catalog_properties(ep: Endpoints, *, ref: str = "main") -> dict[str, str]:
    """Properties of an Iceberg catalog on Nessie `ref`, files in the S3 warehouse.

    Without `connector.name`: CREATE CATALOG names the connector in USING.
    """
    return {
        "iceberg.catalog.type": "nessie",
        "iceberg.nessie-catalog.uri": ep.nessie_url,
        "iceberg.nessie-catalog.ref": ref,
        "iceberg.nessie-catalog.default-warehouse-dir": ep.warehouse,
        "fs.native-s3.enabled": "true",
        "s3.endpoint": ep.s3_endpoint,
        "s3.region": ep.s3_region,
        "s3.path-style-access": "true",
        "s3.aws-access-key": f"${{ENV:{LAKE_S3_ACCESS_KEY_ENV}}}",
        "s3.aws-secret-key": f"${{ENV:{LAKE_S3_SECRET_KEY_ENV}}}",
    }


_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.connect.name = org.apache.kafka.connect.runtime.rest
logger.connect.level = INFO
"""


def _write(path: Path, props: dict[str, str], *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k}={v}\n" for k, v in props.items())
    if path.exists() and path.read_text() == text:
        return
    path.write_text(text)
    if private:
        path.chmod(0o600)


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


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
        "TRINO_HOST": ep.trino_host,
        "TRINO_PORT": str(ep.trino_port),
        "KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
        # The staging catalogs are the lake on another branch: the operator sets the ref.
        "ICEBERG_CATALOG_PROPERTIES": json.dumps(
            {
                k: v
                for k, v in lake_catalog_properties(ep).items()
                if k != "iceberg.nessie-catalog.ref"
            }
        ),
        "DRIFT_INTERVAL_SECONDS": str(drift_interval),
        "METRICS_PORT": str(metrics_port),
        "LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness_port}/healthz",
        # As the operator image sets it (images/Dockerfile): see the comment there.
        "MALLOC_ARENA_MAX": "2",
    }
