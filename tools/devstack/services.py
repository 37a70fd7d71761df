"""How each service of the local stack runs: its command line, config files and health check.

One `*_plan` function per service; `devstack.stack` starts them in order and waits.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import pwd
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clientpipelines.nessie_access import TOKEN_AUDIENCE as NESSIE_TOKEN_AUDIENCE
from clientpipelines.nessie_access import TRINO_TOKEN_ENV as NESSIE_TRINO_TOKEN_ENV
from clientpipelines.nessie_access import Principals, server_properties
from clientpipelines.trino_access import TOKEN_AUDIENCE as TRINO_TOKEN_AUDIENCE
from clientpipelines.trino_access import RulesFile
from devstack import artifacts, procs
from devstack.paths import identity_root
from devstack.pki import (
    SERVICE_ACCOUNT_ISSUER,
    mint_service_account_token,
    write_service_account_keys,
)

if TYPE_CHECKING:
    from devstack.stack import Endpoints, Stack

# The platform's principals in Trino: client certificates from the stack's CA.
TRINO_ADMIN = "admin"
TRINO_OPERATOR = "clientpipelines-operator"
# ... and in Nessie: ServiceAccounts of the namespace argocd/ deploys the platform to.
PLATFORM_NAMESPACE = "data-platform"
NESSIE_PRINCIPALS = Principals.in_namespace(PLATFORM_NAMESPACE)
NESSIE_TOKEN_LIFETIME = dt.timedelta(days=365)

POSTGRES_MAJOR = 15
POSTGRES_BIN = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")
WAREHOUSE_BUCKET = "warehouse"
# Elementary's reports, one per client and run (the runner's REPORTS_URI).
REPORTS_BUCKET = "reports"
LAKE_S3_ACCESS_KEY_ENV = "LAKE_S3_ACCESS_KEY"
LAKE_S3_SECRET_KEY_ENV = "LAKE_S3_SECRET_KEY"  # noqa: S105 - a variable's name


@dataclass(frozen=True)
class Plan:
    """How to run one service and how to know it is healthy."""

    argv: list[str]
    health: Callable[[], bool]
    cwd: Path | None = None
    env: dict[str, str] | None = None


def postgres_plan(stack: Stack) -> Plan:
    root = stack.postgres_root
    data = root / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
    if not (data / "PG_VERSION").exists():
        initdb(stack, root, data, as_postgres)
    argv = [
        *as_postgres,
        str(POSTGRES_BIN / "postgres"),
        "-D",
        str(data),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"port={stack.ports['postgres']}",
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
    return Plan(argv, lambda: postgres_ready(stack))


def initdb(stack: Stack, root: Path, data: Path, as_postgres: list[str]) -> None:
    say("initialising the Postgres cluster (first start)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "socket").mkdir(exist_ok=True)
    pwfile = root / ".pwfile"
    pwfile.write_text(stack.credentials()["postgres_password"] + "\n")
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
        raise procs.StartupError(f"initdb failed:\n{exc.stderr.decode(errors='replace')}") from exc
    finally:
        pwfile.unlink(missing_ok=True)


def postgres_ready(stack: Stack) -> bool:
    import psycopg  # noqa: PLC0415 - only needed once Postgres runs

    with psycopg.connect(stack.endpoints().postgres_dsn(), connect_timeout=2) as conn:
        return conn.execute("select 1").fetchone() == (1,)


def s3proxy_plan(stack: Stack, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
    data = stack.data_dir("s3proxy")
    # With the filesystem provider a bucket is a folder.
    for bucket in (WAREHOUSE_BUCKET, REPORTS_BUCKET):
        (data / bucket).mkdir(exist_ok=True)
    conf = stack.directory / "conf" / "s3proxy.properties"
    write_properties(
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


def nessie_plan(stack: Stack, arts: artifacts.Artifacts) -> Plan:
    data = stack.data_dir("nessie")
    # Authentication (tokens signed by the control planes' ServiceAccount key) and
    # the CEL rules of nessie_access; a properties file, as Quarkus reads it.
    conf = stack.directory / "conf" / "nessie.properties"
    public_key = write_service_account_keys(identity_root()).cert.read_text()
    write_properties(conf, server_properties(NESSIE_PRINCIPALS, public_key, SERVICE_ACCOUNT_ISSUER))
    management = f"http://127.0.0.1:{stack.ports['nessie_management']}"
    argv = [
        str(artifacts.java_home(17) / "bin" / "java"),
        "-Xmx512m",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dquarkus.http.port={stack.ports['nessie']}",
        "-Dquarkus.management.host=127.0.0.1",
        f"-Dquarkus.management.port={stack.ports['nessie_management']}",
        # A persistent version store: a restart keeps every branch and commit.
        "-Dnessie.version.store.type=ROCKSDB",
        f"-Dnessie.version.store.persist.rocks.database-path={data / 'rocksdb'}",
        "-Dquarkus.log.console.json=false",
        "-Dquarkus.otel.sdk.disabled=true",
        f"-Dquarkus.config.locations={conf.as_uri()}",
        "-jar",
        str(arts.nessie_jar),
    ]
    # Every API call needs a token now; readiness is on the management port.
    return Plan(argv, lambda: procs.http_status(f"{management}/q/health/ready") == 200)


def nessie_token_files(stack: Stack) -> dict[str, str]:
    """The platform principals' Nessie tokens (admin, trino, operator), as files.

    A cluster's kubelet projects these tokens; here they are signed with the same
    key the local control planes sign with, and made again well before they expire.
    """
    folder = stack.directory / "nessie-tokens"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    pair = write_service_account_keys(identity_root())
    files = {}
    for name, principal in (
        ("admin", NESSIE_PRINCIPALS.admin),
        ("trino", NESSIE_PRINCIPALS.trino),
        ("operator", NESSIE_PRINCIPALS.operator),
    ):
        path = folder / name
        fresh = path.exists() and (
            time.time() - path.stat().st_mtime < NESSIE_TOKEN_LIFETIME.total_seconds() / 2
        )
        # A token from another signing key (a new identity) is made again too.
        if not fresh or path.stat().st_mtime < pair.key.stat().st_mtime:
            token = mint_service_account_token(
                pair, principal, NESSIE_TOKEN_AUDIENCE, NESSIE_TOKEN_LIFETIME
            )
            tmp = path.with_name(f".{name}.tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token)
            tmp.replace(path)
        files[name] = str(path)
    return files


def kafka_config(stack: Stack) -> Path:
    data = stack.data_dir("kafka")
    conf = stack.directory / "conf" / "kafka.properties"
    p = stack.ports
    write_properties(
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
            # Topics are created by Kafka Connect with the connector's settings
            # (retention); a Trino query on a topic not there yet must not make it
            # first with the broker's defaults.
            "auto.create.topics.enable": "false",
            # Retention is enforced within a second of a topic's retention running
            # out (default: every 5 minutes), so a test can expire a topic's head.
            "log.retention.check.interval.ms": "1000",
        },
    )
    return conf


# The Trino server's maximum heap (a JVM size, e.g. 8g); read when Trino starts.
TRINO_HEAP_ENV = "DEVSTACK_TRINO_HEAP"


def kafka_java(
    stack: Stack, arts: artifacts.Artifacts, heap: str, main: str, *args: str
) -> list[str]:
    log4j = stack.directory / "conf" / "log4j2.properties"
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


def kafka_plan(stack: Stack, arts: artifacts.Artifacts) -> Plan:
    conf = kafka_config(stack)
    data = stack.data_dir("kafka") / "logs"
    if not (data / "meta.properties").exists():
        # KRaft storage is formatted once; later starts keep topics and offsets.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            kafka_java(
                stack,
                arts,
                "256m",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                # Attached with '=': a base64url id starts with '-' one time in 64,
                # and the tool's argument parser would then take it for an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(conf),
            ),
            check=True,
            capture_output=True,
        )
    argv = kafka_java(stack, arts, "768m", "kafka.Kafka", str(conf))
    return Plan(
        argv, lambda: "Kafka Server started" in stack.log("kafka").read_text(errors="replace")
    )


def connect_plan(stack: Stack, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
    conf = stack.directory / "conf" / "connect-distributed.properties"
    write_properties(
        conf,
        {
            "bootstrap.servers": ep.kafka_bootstrap,
            "group.id": "clientpipelines-connect",
            "listeners": ep.connect_url,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(stack.ports["connect"]),
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
            # Connectors name their login as ${file:<path>:<key>}; Connect reads it
            # when it starts them, from this folder only (KIP-993 allowed.paths).
            "config.providers": "file",
            "config.providers.file.class": (
                "org.apache.kafka.common.config.provider.FileConfigProvider"
            ),
            "config.providers.file.param.allowed.paths": ep.connect_credentials_dir,
        },
    )
    Path(ep.connect_credentials_dir).mkdir(parents=True, exist_ok=True)
    argv = kafka_java(
        stack, arts, "768m", "org.apache.kafka.connect.cli.ConnectDistributed", str(conf)
    )

    def healthy() -> bool:
        plugins = procs.http_json(f"{ep.connect_url}/connector-plugins")
        return any(p["class"].endswith("PostgresConnector") for p in plugins)

    return Plan(argv, healthy)


def trino_plan(stack: Stack, arts: artifacts.Artifacts, ep: Endpoints) -> Plan:
    data = stack.data_dir("trino")
    catalogs = data / "etc" / "catalog"
    catalogs.mkdir(parents=True, exist_ok=True)
    # The platform's own catalog; clients' catalogs are created at run time
    # (CREATE CATALOG) and land in the same folder, so they survive restarts.
    write_properties(
        catalogs / "lake.properties",
        {"connector.name": "iceberg", **lake_catalog_properties(ep)},
        private=True,
    )
    # Trino reads the catalog store's settings from etc/catalog-store.properties
    # relative to its working directory, so it runs in its data folder.
    write_properties(
        data / "etc" / "catalog-store.properties", {"catalog.config-dir": str(catalogs)}
    )
    conf = data / "etc" / "config.properties"
    port, internal = stack.ports["trino"], stack.ports["trino_internal"]
    tls = trino_tls(stack)
    # Who may do what (trino_access); the operator adds each client's grants.
    RulesFile(Path(ep.trino_rules_file), admins=[TRINO_ADMIN], operator=TRINO_OPERATOR).refresh()
    write_properties(
        data / "etc" / "access-control.properties",
        {
            "access-control.name": "file",
            "security.config-file": ep.trino_rules_file,
            # A new client's grants apply within a second of the operator writing them.
            "security.refresh-period": "1s",
        },
    )
    write_properties(
        conf,
        {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            # Trino's query history (system.runtime.queries) is how the operator
            # benchmark sees, from Trino itself, that idle drift checks create and drop
            # no catalog; the default keeps 100 queries, fewer than one check round.
            "query.max-history": "20000",
            # Clients: HTTPS only, authenticated. Plain HTTP stays for Trino's own
            # node-to-node calls (signed with the shared secret); Trino refuses
            # authentication over it, so no client can use it.
            "http-server.http.port": str(internal),
            "discovery.uri": f"http://127.0.0.1:{internal}",
            "http-server.https.enabled": "true",
            "http-server.https.port": str(port),
            "http-server.https.keystore.path": str(tls["keystore"]),
            # Client certificates are checked against the stack's CA.
            "http-server.https.truststore.path": ep.trino_ca_file,
            "internal-communication.shared-secret": stack.credentials()["trino_shared_secret"],
            # The platform's principals by certificate (user = its CN); a client's
            # runner by its ServiceAccount token (user = the token's subject).
            "http-server.authentication.type": "CERTIFICATE,JWT",
            "http-server.authentication.certificate.user-mapping.pattern": ".*CN=([^,]+).*",
            "http-server.authentication.jwt.key-file": str(tls["service_account_key"]),
            "http-server.authentication.jwt.required-issuer": SERVICE_ACCOUNT_ISSUER,
            "http-server.authentication.jwt.required-audience": TRINO_TOKEN_AUDIENCE,
            "catalog.management": "dynamic",
            "catalog.store": "file",
            "plugin.dir": str(arts.trino_home / "plugin"),
            # Trino stops writing to stdout once started; its server log goes here.
            "log.path": str(stack.logs_dir / "trino-server.log"),
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
        # Each catalog costs the coordinator about 2 MB of heap (its connector's JMX
        # beans), and DROP CATALOG does not give all of it back: a stack for a
        # thousand clients' catalogs (benchmarks/operator_reconcile.py) needs more.
        f"-Xmx{os.environ.get(TRINO_HEAP_ENV, '3g')}",
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
        info = procs.http_json(f"http://127.0.0.1:{internal}/v1/info")
        return info.get("starting") is False

    # The S3 keys reach Trino as environment variables that catalogs name as
    # ${ENV:...}: no CREATE CATALOG text (query history, web UI) ever holds them.
    env = {
        **os.environ,
        LAKE_S3_ACCESS_KEY_ENV: ep.s3_access_key,
        LAKE_S3_SECRET_KEY_ENV: ep.s3_secret_key,
        NESSIE_TRINO_TOKEN_ENV: Path(ep.nessie_tokens["trino"]).read_text(),
    }
    return Plan(argv, healthy, cwd=data, env=env)


def trino_tls(stack: Stack) -> dict[str, Path]:
    """Trino's server key and certificate (one PEM), and the key tokens are checked with."""
    pair = stack.pki.issue("trino", common_name="trino", server=True)
    keystore = stack.pki.directory / "trino-keystore.pem"
    keystore.write_bytes(pair.key.read_bytes() + pair.cert.read_bytes())
    keystore.chmod(0o600)
    return {
        "keystore": keystore,
        "service_account_key": write_service_account_keys(identity_root()).cert,
    }


def post_start(stack: Stack, ep: Endpoints) -> None:
    """Nothing to do yet: every service creates its own state on first start."""


def version(stack: Stack, service: str, ep: Endpoints) -> str | None:
    if service == "postgres":
        import psycopg  # noqa: PLC0415

        with psycopg.connect(ep.postgres_dsn(), connect_timeout=2) as conn:
            row = conn.execute("show server_version").fetchone()
            return str(row[0]) if row else None
    if service == "trino":
        info = procs.http_json(f"http://127.0.0.1:{stack.ports['trino_internal']}/v1/info")
        return str(info["nodeVersion"]["version"])
    if service == "connect":
        return str(procs.http_json(ep.connect_url)["version"])
    if service == "nessie":
        management = f"http://127.0.0.1:{stack.ports['nessie_management']}"
        ready = procs.http_status(f"{management}/q/health/ready") == 200
        return artifacts.NESSIE_VERSION if ready else None
    if service == "kafka":
        log = stack.log("kafka").read_text(errors="replace")
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
        # Trino's own Nessie token, from its environment (never in the catalog's text).
        "iceberg.nessie-catalog.authentication.type": "BEARER",
        "iceberg.nessie-catalog.authentication.token": f"${{ENV:{NESSIE_TRINO_TOKEN_ENV}}}",
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


def write_properties(path: Path, props: dict[str, str], *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def escape(value: str) -> str:  # a Java properties value, read back as written
        return value.replace("\\", "\\\\").replace("\n", "\\n")

    text = "".join(f"{k}={escape(v)}\n" for k, v in props.items())
    if path.exists() and path.read_text() == text:
        return
    path.write_text(text)
    if private:
        path.chmod(0o600)


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
