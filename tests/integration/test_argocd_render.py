"""Every platform Application rendered as Argo CD renders it: its pinned upstream chart
(the packaged charts beside the repository) with its values from argocd/values, or
our own chart; then checked for the effect the README promises, and server-side
dry-run against a control plane holding the upstream CRDs.

The real sync by a real Argo CD is tests/acceptance/test_argocd.py.
"""

from __future__ import annotations

import configparser
import datetime as dt
import io
import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
import yaml

from clientpipelines import nessie_access
from clientpipelines.clients.errors import ServiceError
from clientpipelines.clients.nessie import NessieClient
from clientpipelines.naming import MAIN_BRANCH, ClientNames
from clientpipelines.nessie_access import Principals
from clientpipelines.operator.parts.branch import first_commit
from devstack import artifacts, procs
from devstack.cli import deployed_client_namespaces
from devstack.controlplane import ControlPlane
from devstack.paths import REPO_ROOT, identity_root
from devstack.pki import mint_service_account_token, write_service_account_keys
from devstack.stack import Endpoints
from tests.argocd_render import CHART_REPOSITORY, CLUSTER_SCOPED, chart_of, render_application
from tests.integration.test_charts import PROMETHEUS_CRDS, established, helm, kubectl

pytestmark = pytest.mark.skipif(
    not (CHART_REPOSITORY / "index.yaml").is_file(),
    reason=f"the pinned upstream charts are expected in {CHART_REPOSITORY} (shared data)",
)
APPS_CHART = REPO_ROOT / "argocd" / "apps"
REPO_URL = "file:///srv/git/clientpipelines.git"


@cache
def applications() -> dict[str, dict[str, Any]]:
    """The app-of-apps chart rendered with its defaults and our repository URL."""
    docs = yaml.safe_load_all(
        helm("template", "root", str(APPS_CHART), "-n", "argocd", "--set", f"repoURL={REPO_URL}")
    )
    return {d["metadata"]["name"]: d for d in docs if d and d["kind"] == "Application"}


def apps_chart_objects() -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(
        helm("template", "root", str(APPS_CHART), "-n", "argocd", "--set", f"repoURL={REPO_URL}")
    )
    return [d for d in docs if d]


@cache
def rendered(name: str) -> list[dict[str, Any]]:
    return render_application(applications()[name])


def platform_apps() -> list[str]:
    return sorted(n for n in applications() if n.startswith("platform-"))


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name or ''}: found {len(found)}"
    return found[0]


def properties(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string("[p]\n" + text)
    return dict(parser["p"])


def chart_defaults(tgz: str) -> dict[str, Any]:
    with tarfile.open(tgz) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and
                      m.name.endswith("/values.yaml"))  # fmt: skip
        data = tar.extractfile(member)
        assert data is not None
        return yaml.safe_load(io.TextIOWrapper(data, encoding="utf-8")) or {}


def unknown_keys(ours: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys of `ours` the chart's defaults do not have. A map the chart leaves empty
    or fills with plain values (e.g. `catalogs`, `accessControl`) takes any key."""
    if not isinstance(ours, dict) or not isinstance(defaults, dict):
        return []
    free_form = not defaults or all(not isinstance(v, dict | list) for v in defaults.values())
    missing = []
    for key, value in ours.items():
        if key in defaults:
            missing += unknown_keys(value, defaults[key], f"{path}{key}.")
        elif not free_form:
            missing.append(f"{path}{key}")
    return missing


@pytest.mark.parametrize("name", ["platform-trino", "platform-nessie", "platform-minio",
                                  "platform-strimzi", "platform-cloudnative-pg"])  # fmt: skip
def test_every_value_key_exists_in_its_pinned_chart(name: str) -> None:
    """A key the pinned chart does not have is silently ignored by Helm (it was how
    `coordinator.additionalConfigProperties` left dynamic catalogs off)."""
    assert name in platform_apps()
    chart, values, _ = chart_of(applications()[name])
    defaults = chart_defaults(chart)
    for path in values:
        ours = yaml.safe_load(path.read_text()) or {}
        assert unknown_keys(ours, defaults) == [], f"{path.name}: not in {Path(chart).name}"


def test_trino_has_dynamic_catalogs_in_a_persistent_store_tls_tokens_and_access_rules() -> None:
    docs = rendered("platform-trino")
    coordinator = one(docs, "Deployment", "trino-coordinator")
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    config = properties(config_maps["trino-coordinator"]["config.properties"])
    worker = properties(config_maps["trino-worker"]["config.properties"])
    # Dynamic catalogs on every node; the coordinator's store is a file store.
    assert config["catalog.management"] == worker["catalog.management"] == "dynamic"
    assert config["catalog.store"] == "file"
    store = properties(config_maps["trino-coordinator"]["catalog-store.properties"])
    store_dir = store["catalog.config-dir"]
    # HTTPS with client certificates and ServiceAccount tokens; no password over
    # plain HTTP, which carries only the nodes' traffic (shared secret on each).
    assert config["http-server.https.enabled"] == "true"
    assert config["http-server.authentication.type"] == "CERTIFICATE,JWT"
    assert config["http-server.authentication.allow-insecure-over-http"] == "false"
    assert config["http-server.authentication.jwt.required-audience"] == "trino"
    assert config["internal-communication.shared-secret"].startswith("${ENV:")
    assert (
        worker["internal-communication.shared-secret"]
        == (config["internal-communication.shared-secret"])
    )
    # File access control, re-read every second, from the operator's rules.
    access = properties(config_maps["trino-coordinator"]["access-control.properties"])
    assert access["access-control.name"] == "file"
    assert access["security.refresh-period"] == "1s"

    pod = coordinator["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}

    def claim_at(container: dict[str, Any], folder: str) -> str:
        """The claim mounted at `folder` or above it in `container`."""
        mounts = [m for m in container["volumeMounts"] if folder.startswith(m["mountPath"])]
        assert mounts, f"nothing mounted at {folder} in {container['name']}"
        mount = max(mounts, key=lambda m: len(m["mountPath"]))
        return str(volumes[mount["name"]]["persistentVolumeClaim"]["claimName"])

    (trino,) = pod["containers"][:1]
    for container in pod["containers"] + pod.get("initContainers", []):
        paths = [m["mountPath"] for m in container["volumeMounts"]]
        assert len(paths) == len(set(paths)), f"{container['name']} mounts a path twice"
    store_claim = claim_at(trino, store_dir)
    rules_claim = claim_at(trino, access["security.config-file"])
    # The store is seeded with the chart's catalogs (the lake) before Trino starts.
    (seed,) = pod["initContainers"]
    assert claim_at(seed, store_dir) == store_claim
    # Both claims exist: the platform chart creates them.
    platform = rendered("platform-resources")
    claims = {d["metadata"]["name"]: d for d in platform if d["kind"] == "PersistentVolumeClaim"}
    assert store_claim in claims
    assert claims[rules_claim]["spec"]["accessModes"] == ["ReadWriteMany"]
    # The operator writes the rules file on that same claim.
    operator = operator_env()
    assert operator["TRINO_ACCESS_RULES_FILE"] == access["security.config-file"]
    assert operator_claim() == rules_claim
    # Workers run full-reload catalogs' splits: they see the login files too.
    worker_pod = one(docs, "Deployment", "trino-worker")["spec"]["template"]["spec"]
    volumes.update({v["name"]: v for v in worker_pod["volumes"]})
    (worker_container,) = worker_pod["containers"][:1]
    assert claim_at(worker_container, operator["TRINO_CREDENTIALS_DIR"]) == operator_claim()
    assert claim_at(trino, operator["TRINO_CREDENTIALS_DIR"]) == operator_claim()
    # They read them through the group the operator writes them for (0640), and
    # the Secrets and the catalog store through fsGroup.
    group = operator_deployment()["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    for spec in (pod, worker_pod):
        assert spec["securityContext"]["fsGroup"] == group
        assert spec["securityContext"]["runAsGroup"] == group
    assert volumes["trino-tls"]["secret"]["defaultMode"] & 0o040
    # One coordinator at a time on its ReadWriteOnce store.
    assert coordinator["spec"]["strategy"]["type"] == "Recreate"


def operator_deployment() -> dict[str, Any]:
    return one(rendered("clientpipeline-operator"), "Deployment")


def operator_env() -> dict[str, str]:
    (container,) = operator_deployment()["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def operator_claim() -> str:
    volumes = operator_deployment()["spec"]["template"]["spec"]["volumes"]
    (claim,) = [v["persistentVolumeClaim"]["claimName"] for v in volumes
                if "persistentVolumeClaim" in v]  # fmt: skip
    return str(claim)


def services_deployed() -> set[tuple[str, str, int]]:
    """(name, namespace, port) of every Service the platform renders, and of those
    the Strimzi operator creates from the Kafka and KafkaConnect resources."""
    found: set[tuple[str, str, int]] = set()
    for name, app in applications().items():
        namespace = app["spec"]["destination"]["namespace"]
        for d in rendered(name):
            if d["kind"] == "Service":
                for port in d["spec"]["ports"]:
                    found.add((d["metadata"]["name"], namespace, int(port["port"])))
            if d["kind"] == "Kafka":
                # Strimzi: <cluster>-kafka-bootstrap, port per listener.
                for listener in d["spec"]["kafka"]["listeners"]:
                    found.add((f"{d['metadata']['name']}-kafka-bootstrap", namespace,
                               int(listener["port"])))  # fmt: skip
            if d["kind"] == "KafkaConnect":
                found.add((f"{d['metadata']['name']}-connect-api", namespace, 8083))
    return found


def test_every_service_the_operator_is_configured_with_is_deployed() -> None:
    """The operator's addresses are the Services the platform Applications create
    (release names fixed: chart defaults would have made them platform-trino-trino)."""
    env = operator_env()
    catalog = yaml.safe_load(env["ICEBERG_CATALOG_PROPERTIES"])
    addresses = {
        "CONNECT_URL": env["CONNECT_URL"],
        "NESSIE_URL": env["NESSIE_URL"],
        "TRINO": f"https://{env['TRINO_HOST']}:{env['TRINO_PORT']}",
        "KAFKA_BOOTSTRAP": f"kafka://{env['KAFKA_BOOTSTRAP']}",
        "catalog nessie": catalog["iceberg.nessie-catalog.uri"],
        "catalog s3": catalog["s3.endpoint"],
    }
    deployed = services_deployed()
    for what, url in addresses.items():
        parsed = urlparse(url)
        host = parsed.hostname or ""
        assert host.endswith(".svc"), f"{what}: {url}"
        service, namespace = host.split(".")[:2]
        assert (service, namespace, parsed.port) in deployed, f"{what}: {url} is deployed by none"
    # Over https the operator authenticates by its certificate.
    assert env["TRINO_HTTP_SCHEME"] == "https"
    assert {"TRINO_CA_FILE", "TRINO_CLIENT_CERT_FILE", "TRINO_CLIENT_KEY_FILE"} <= set(env)
    # The runs' NetworkPolicy lets them reach Trino's port.
    (policy,) = [d for d in rendered("clientpipeline-operator")
                 if d["kind"] == "NetworkPolicy" and "runner" in d["metadata"]["name"]]  # fmt: skip
    allowed = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert int(env["TRINO_PORT"]) in allowed


def test_the_namespaces_every_application_writes_to_exist_and_are_allowed() -> None:
    """The operator's Roles go to the clients' namespace: the platform project must
    allow it and something must create it (it was neither)."""
    projects = {d["metadata"]["name"]: d for d in apps_chart_objects() if d["kind"] == "AppProject"}
    created = {d["metadata"]["name"] for d in apps_chart_objects() if d["kind"] == "Namespace"}
    for name, app in applications().items():
        if name == "clientpipelines-root":
            continue
        namespace = app["spec"]["destination"]["namespace"]
        allowed = {d["namespace"] for d in projects[app["spec"]["project"]]["spec"]["destinations"]}
        used = {d["metadata"].get("namespace") or namespace for d in rendered(name)
                if d["kind"] not in CLUSTER_SCOPED}  # fmt: skip
        assert used <= allowed, f"{name} writes to {used - allowed}, not allowed in its project"
        options = app["spec"]["syncPolicy"].get("syncOptions") or []
        for ns in used - ({namespace} if "CreateNamespace=true" in options else set()):
            assert ns in created, f"{name} writes to namespace {ns}, which nothing creates"


def test_the_platform_objects_the_upstream_operators_reconcile_are_in_git() -> None:
    docs = rendered("platform-resources")
    kafka = one(docs, "Kafka")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"  # KRaft only: no ZooKeeper
    pool = one(docs, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    connect = one(docs, "KafkaConnect")
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "false"
    (plugin,) = connect["spec"]["build"]["plugins"]
    (artifact,) = plugin["artifacts"]
    assert "debezium-connector-postgres-3.6.1.Final-plugin.tar.gz" in artifact["url"]
    assert connect["spec"]["config"]["config.providers"] == "file"
    # The connectors' login files: on the operator's shared claim, the only path
    # Connect's FileConfigProvider may read.
    assert (
        connect["spec"]["config"]["config.providers.file.param.allowed.paths"]
        == (operator_env()["CONNECT_CREDENTIALS_DIR"])
    )
    (volume,) = connect["spec"]["template"]["pod"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == operator_claim()
    # Strimzi refuses additional volumes mounted outside /mnt.
    mounts = connect["spec"]["template"]["connectContainer"]["volumeMounts"]
    assert all(m["mountPath"].startswith("/mnt/") for m in mounts)
    assert operator_env()["CONNECT_CREDENTIALS_DIR"].startswith(mounts[0]["mountPath"])
    operator_pod = operator_deployment()["spec"]["template"]["spec"]
    assert (
        operator_pod["securityContext"]["fsGroup"]
        in (connect["spec"]["template"]["pod"]["securityContext"]["supplementalGroups"])
    )
    # Nessie's store: the CloudNativePG cluster whose -rw Service and login Secret
    # Nessie's values name.
    postgres = one(docs, "Cluster")
    nessie_values = yaml.safe_load((REPO_ROOT / "argocd/values/nessie.yaml").read_text())
    jdbc = urlparse(nessie_values["jdbc"]["jdbcUrl"].removeprefix("jdbc:"))
    assert jdbc.hostname == f"{postgres['metadata']['name']}-rw.data-platform.svc"
    assert jdbc.path.lstrip("/") == postgres["spec"]["bootstrap"]["initdb"]["database"]
    assert (
        nessie_values["jdbc"]["secret"]["name"]
        == (postgres["spec"]["bootstrap"]["initdb"]["secret"]["name"])
    )
    # The warehouse bucket the lake catalog writes to is created by MinIO's chart.
    warehouse = urlparse(
        yaml.safe_load(operator_env()["ICEBERG_CATALOG_PROPERTIES"])[
            "iceberg.nessie-catalog.default-warehouse-dir"
        ]
    ).netloc
    minio_values = yaml.safe_load((REPO_ROOT / "argocd/values/minio.yaml").read_text())
    assert warehouse in {b["name"] for b in minio_values["buckets"]}


@pytest.fixture(scope="module")
def upstream_crds(control_plane: ControlPlane) -> Iterator[None]:
    """The CRDs of every platform Application's charts, and the Prometheus
    Operator's (a cluster this ships to runs it), installed as Argo CD would."""
    names = []
    for name in applications():
        for d in rendered(name):
            if d["kind"] == "CustomResourceDefinition":
                result = kubectl(
                    control_plane.kubeconfig, "apply", "--server-side", "--force-conflicts",
                    "-f", "-", stdin=yaml.safe_dump(d),
                )  # fmt: skip
                assert result.returncode == 0, result.stderr
                names.append(f"crd/{d['metadata']['name']}")
    if PROMETHEUS_CRDS.is_dir():
        for crd in PROMETHEUS_CRDS.glob("monitoring.coreos.com_*.yaml"):
            result = kubectl(control_plane.kubeconfig, "apply", "--server-side", "-f", str(crd))
            assert result.returncode == 0, result.stderr
    established(control_plane, *names)
    for ns in ("data-platform", "clients"):
        kubectl(control_plane.kubeconfig, "create", "namespace", ns)
    yield
    kubectl(control_plane.kubeconfig, "delete", "--wait=false", *names)


@pytest.mark.parametrize("name", ["platform-trino", "platform-nessie", "platform-minio",
                                  "platform-strimzi", "platform-cloudnative-pg",
                                  "platform-resources", "clientpipeline-operator"])  # fmt: skip
def test_every_platform_application_passes_server_side_dry_run(
    upstream_crds: None, control_plane: ControlPlane, name: str
) -> None:
    namespace = applications()[name]["spec"]["destination"]["namespace"]
    docs = [d for d in rendered(name) if d["kind"] != "CustomResourceDefinition"]
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            d["metadata"].setdefault("namespace", namespace)
    result = kubectl(control_plane.kubeconfig, "apply", "--dry-run=server", "--server-side",
                     "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(docs))  # fmt: skip
    assert result.returncode == 0, result.stderr


def java_properties(text: str) -> dict[str, str]:
    """A properties file as Java reads it: continuation lines joined, `\\x` unescaped."""
    out: dict[str, str] = {}
    logical = re.sub(r"\\\n\s*", "", text)
    for line in logical.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = re.sub(r"\\(.)", r"\1", value.strip())
    return out


def nessie_config() -> tuple[str, dict[str, Any]]:
    """Nessie's rendered application.properties and its container."""
    docs = rendered("platform-nessie")
    (config,) = [d["data"]["application.properties"] for d in docs if d["kind"] == "ConfigMap"]
    (container,) = one(docs, "Deployment", "nessie")["spec"]["template"]["spec"]["containers"]
    return config, container


def platform_principals() -> Principals:
    """The principals as deployed: the platform's namespace, clients' runners in
    the namespaces the operator's values give clients."""
    namespace = applications()["platform-nessie"]["spec"]["destination"]["namespace"]
    return Principals.in_namespace(namespace, deployed_client_namespaces())


def test_nessie_authenticates_every_caller_and_authorizes_by_the_generated_rules() -> None:
    config, container = nessie_config()
    props = java_properties(config)
    assert props["nessie.server.authentication.enabled"] == "true"
    # Tokens checked with the cluster's key, not by an OIDC server nobody runs.
    assert "quarkus.oidc.auth-server-url" not in props
    assert props["quarkus.oidc.token.audience"] == nessie_access.TOKEN_AUDIENCE
    key_ref = next(e for e in container["env"] if e["name"] == "QUARKUS_OIDC_PUBLIC_KEY")
    # ... the key Trino checks runs' tokens with.
    trino_pod = one(rendered("platform-trino"), "Deployment", "trino-coordinator")
    trino_maps = {v["configMap"]["name"] for v in trino_pod["spec"]["template"]["spec"]["volumes"]
                  if "configMap" in v}  # fmt: skip
    assert key_ref["valueFrom"]["configMapKeyRef"]["name"] in trino_maps
    trino_config = properties(
        {
            d["metadata"]["name"]: d["data"]
            for d in rendered("platform-trino")
            if d["kind"] == "ConfigMap"
        }["trino-coordinator"]["config.properties"]
    )
    assert (
        props["quarkus.oidc.token.issuer"]
        == (trino_config["http-server.authentication.jwt.required-issuer"])
    )
    assert props["nessie.server.authorization.enabled"] == "true"
    prefix = "nessie.server.authorization.rules."
    deployed = {k.removeprefix(prefix): v for k, v in props.items() if k.startswith(prefix)}
    assert deployed == nessie_access.rules(platform_principals())


def test_every_nessie_client_presents_its_own_token() -> None:
    principals = platform_principals()
    audience = nessie_access.TOKEN_AUDIENCE
    # The operator: its ServiceAccount's projected token for Nessie, by the rules' name.
    env = operator_env()
    assert env["NESSIE_TOKEN_AUDIENCE"] == audience
    pod = operator_deployment()["spec"]["template"]["spec"]
    account = one(rendered("clientpipeline-operator"), "ServiceAccount")["metadata"]["name"]
    assert principals.operator.endswith(f":{account}")
    projected = {v["name"]: v["projected"] for v in pod["volumes"] if "projected" in v}
    (source,) = projected["nessie-token"]["sources"]
    assert source["serviceAccountToken"]["audience"] == audience
    # Trino: its token from its environment, in the lake catalog and the staging
    # catalogs alike (the operator's catalog properties), named by the rules.
    docs = rendered("platform-trino")
    lake = properties(
        {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}[
            "trino-catalog"
        ]["lake.properties"]
    )
    staging = yaml.safe_load(env["ICEBERG_CATALOG_PROPERTIES"])
    token = f"${{ENV:{nessie_access.TRINO_TOKEN_ENV}}}"
    for catalog in (lake, staging):
        assert catalog["iceberg.nessie-catalog.authentication.type"] == "BEARER"
        assert catalog["iceberg.nessie-catalog.authentication.token"] == token
    coordinator = one(docs, "Deployment", "trino-coordinator")["spec"]["template"]["spec"]
    assert principals.trino.endswith(f":{coordinator['serviceAccountName']}")
    sources = {s["secretRef"]["name"] for s in coordinator["containers"][0]["envFrom"]}
    assert "trino-nessie" in sources
    # The administrator's account exists for the platform team to take tokens of.
    accounts = {d["metadata"]["name"] for d in rendered("platform-resources")
                if d["kind"] == "ServiceAccount"}  # fmt: skip
    assert principals.admin.rsplit(":", 1)[1] in accounts


@pytest.mark.timeout(300)
def test_the_rendered_nessie_config_enforces_the_rules_in_a_real_nessie(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    """Nessie 0.99 started with the chart's application.properties as rendered, its
    JDBC version store in a database of the local Postgres (not the cluster's), the
    local cluster key in place of the ConfigMap: each principal may do what the
    rules say."""
    config, _ = nessie_config()
    database = f"nessie_render_{uuid.uuid4().hex[:8]}"
    port, management = procs.free_port(), procs.free_port()
    # Where it runs here: the rendered lines replaced (Quarkus reads this file's
    # values over -D options), every other line as deployed.
    local: dict[str, str | None] = {
        "quarkus.datasource.postgresql.jdbc.url": "jdbc:postgresql://"
        f"{endpoints.postgres_host}:{endpoints.postgres_port}/{database}",
        "quarkus.http.port": str(port),
        "quarkus.management.port": str(management),
        # Peers' cache invalidations go to the pods behind this Service, found by a
        # DNS query (no DNS server here, and no peers): off.
        "nessie.version.store.persist.cache-invalidations.service-names": None,
    }
    lines = config.splitlines()
    for key, value in local.items():
        (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        lines[at] = f"{key}={value}" if value is not None else ""
    conf = tmp_path / "application.properties"
    conf.write_text("\n".join(lines) + "\n")
    keys = write_service_account_keys(identity_root())
    log = tmp_path / "nessie.log"
    argv = [
        str(artifacts.java_home(21) / "bin" / "java"),
        "-Xmx256m",
        f"-Dquarkus.config.locations={conf.as_uri()}",
        "-Dquarkus.http.host=127.0.0.1",
        "-Dquarkus.management.host=127.0.0.1",
        "-jar",
        str(artifacts.nessie_jar()),
    ]
    # As the Deployment sets them (from the nessie-db Secret and the ConfigMap).
    env = {
        **os.environ,
        "QUARKUS_OIDC_PUBLIC_KEY": keys.cert.read_text(),
        "quarkus.datasource.postgresql.username": endpoints.postgres_user,
        "quarkus.datasource.postgresql.password": endpoints.postgres_password,
    }
    proc: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(endpoints.postgres_dsn(), autocommit=True) as conn:
            conn.execute(f'create database "{database}"')
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
            )

        def ready() -> bool:
            assert proc is not None and proc.poll() is None, f"Nessie exited: {procs.tail(log)}"
            try:
                return procs.http_ok(f"http://127.0.0.1:{management}/q/health/ready")
            except OSError:
                return False

        procs.wait_for("Nessie with the rendered config", ready, timeout=120)
        url = f"http://127.0.0.1:{port}/api/v2"
        principals = platform_principals()

        def as_(principal: str) -> NessieClient:
            path = tmp_path / f"token-{len(list(tmp_path.iterdir()))}"
            lifetime = dt.timedelta(minutes=10)
            token = mint_service_account_token(
                keys, principal, nessie_access.TOKEN_AUDIENCE, lifetime
            )
            path.write_text(token)
            return NessieClient(url, token_file=str(path))

        def status(call: Callable[[], object]) -> int:
            try:
                call()
            except ServiceError as exc:
                return exc.status
            return 200

        operator, trino = as_(principals.operator), as_(principals.trino)
        acme = as_(ClientNames("acme").runner_principal("clients"))
        main = operator.get_reference(MAIN_BRANCH)
        assert main is not None
        assert status(lambda: NessieClient(url).get_reference(MAIN_BRANCH)) == 401
        # The operator: first commit on an empty main, then the client's branch.
        main = first_commit(operator, main)
        assert status(lambda: operator.create_branch("acme-staging", main)) == 200
        assert status(lambda: operator.create_branch("dev", main)) == 403
        # Trino writes staging branches, never main.
        staging = trino.get_reference("acme-staging")
        assert staging is not None
        staging = trino.commit_namespace(staging, "acme", "trino writes acme's staging")
        assert status(lambda: trino.commit_namespace(main, "x", "m")) == 403
        # The client merges its own schema, nothing else; it cannot touch another's.
        assert status(lambda: acme.merge(staging, main)) == 200
        assert status(lambda: acme.create_branch("other-staging", main)) == 403
        # An account of that name outside the clients' namespaces is nobody.
        elsewhere = as_(ClientNames("acme").runner_principal("team-a"))
        assert status(lambda: elsewhere.get_reference("acme-staging")) == 403
        assert status(lambda: as_(principals.admin).delete_branch(staging)) == 200
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with psycopg.connect(endpoints.postgres_dsn(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')


def test_runs_get_no_platform_secret_and_minio_no_default_user() -> None:
    # Runs are their clients' own principals: the deployed operator hands them no
    # shared secret (runner.envSecret stays empty, and so reports are off).
    env = operator_env()
    assert env["RUNNER_ENV_SECRET"] == ""
    assert env["REPORTS_URI"] == ""
    # MinIO's chart adds a `console` admin with a published password unless told not to.
    docs = rendered("platform-minio")
    assert "console123" not in yaml.safe_dump_all(docs)
