"""The GitOps path for real: a real Argo CD (v3.6.1, built from the Go module proxy,
run as local processes by devstack.argocd) syncs this repository, served as a git
repository, and the pinned upstream charts, served as a chart repository, into a
control plane of its own.

(a) the root Application (installed as Terraform installs it: a Helm release of
    argocd/bootstrap) syncs every child Application, and their objects are in the
    API server as rendered;
(b) a client committed as clients/<id>/values.yaml gets its Application from the
    ApplicationSet, its ClientPipeline is made Ready by the operator, and Argo CD
    itself reports it Healthy through our Lua; a client without its credentials is
    Degraded, as the Lua says;
(c) removing the client's folder deletes its Application and keeps its
    ClientPipeline (Prune=false, Delete=false): nothing dropped by accident;
(d) a change to the operator's values in git reaches the live Deployment.

No kubelet runs here, so upstream workloads never start: their Applications are
asserted Synced with their objects present, not Healthy. CloudNativePG's admission
webhook cannot answer without its pod, so the one object the API server refuses is
the Postgres Cluster of Nessie's store; the test asserts that this is the only one,
and why.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from devstack.argocd import ArgoCD, ChartRepository, GitOpsRepository
from devstack.binaries import helm_build
from devstack.controlplane import ControlPlane
from devstack.operator import (
    QUIET_SCHEDULE,
    OperatorProcess,
    condition,
    get_pipeline,
    put_client_secret,
    wait_ready,
)
from devstack.paths import REPO_ROOT
from devstack.procs import wait_for
from devstack.sampledata import SampleData
from devstack.stack import Stack
from devstack.wiring import unwire_client
from tests.argocd_health import health
from tests.argocd_render import CHART_REPOSITORY, CLUSTER_SCOPED, render_application
from tests.integration.test_charts import PROMETHEUS_CRDS

pytestmark = [
    pytest.mark.skipif(
        not (CHART_REPOSITORY / "index.yaml").is_file(),
        reason=f"the pinned upstream charts are expected in {CHART_REPOSITORY} (shared data)",
    ),
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="Argo CD needs redis-server (Debian package redis-server; .ci/run installs it)",
    ),
]

ARGO = ("argoproj.io", "v1alpha1")
NAMESPACE = "argocd"
CLIENTS = "clients"
TABLES = ["person", "observation_period", "provider", "care_site"]
# Argo CD's own Applications, from argocd/apps (the example clients come from the
# ApplicationSet).
PLATFORM_APPS = {
    "clientpipeline-operator",
    "platform-cloudnative-pg",
    "platform-minio",
    "platform-nessie",
    "platform-resources",
    "platform-strimzi",
    "platform-trino",
}


class Argo:
    """Argo CD's objects in the control plane, as its users and its UI see them."""

    def __init__(self, api: client.ApiClient) -> None:
        self.objects = client.CustomObjectsApi(api)

    def applications(self) -> dict[str, dict[str, Any]]:
        items = self.objects.list_namespaced_custom_object(*ARGO, NAMESPACE, "applications")
        return {a["metadata"]["name"]: a for a in items["items"]}

    def application(self, name: str) -> dict[str, Any] | None:
        return self.applications().get(name)

    def refresh(self, name: str) -> None:
        """As the UI's Refresh button: look at git again now, not at the next resync."""
        self.objects.patch_namespaced_custom_object(
            *ARGO,
            NAMESPACE,
            "applications",
            name,
            {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}},
        )

    def refresh_clients(self) -> None:
        self.objects.patch_namespaced_custom_object(
            *ARGO,
            NAMESPACE,
            "applicationsets",
            "clients",
            {"metadata": {"annotations": {"argocd.argoproj.io/application-set-refresh": "true"}}},
        )

    def wait(
        self,
        what: str,
        check: Callable[[dict[str, Any] | None], bool],
        name: str,
        timeout: float = 180,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            app = self.application(name)
            return app if check(app) else None

        found: dict[str, Any] = wait_for(f"{name}: {what}", probe, timeout=timeout, interval=1)
        return found


def synced(app: dict[str, Any] | None) -> bool:
    return ((app or {}).get("status") or {}).get("sync", {}).get("status") == "Synced"


def health_of(app: dict[str, Any] | None) -> str:
    return str((((app or {}).get("status") or {}).get("health") or {}).get("status"))


def resource_health(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    for r in (app.get("status") or {}).get("resources") or []:
        if r["kind"] == kind and r["name"] == name:
            return dict(r.get("health") or {})
    return {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own: Argo CD installs CRDs and namespaces there that
    the other tests' control plane must not see."""
    cp = ControlPlane(
        tmp_path_factory.mktemp("argocd-controlplane"), die_with_parent=True, workloads=False
    )
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def api(cluster: ControlPlane) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def gitops(tmp_path_factory: pytest.TempPathFactory) -> GitOpsRepository:
    """This repository as a git repository, without its example clients: the
    operator here works on the shared platform stack, where `make demo` may be
    using the examples' ids. The tests commit clients of their own."""
    repo = GitOpsRepository(tmp_path_factory.mktemp("gitops") / "clientpipelines")
    repo.create_from(REPO_ROOT)
    repo.remove("clients")
    repo.commit("no client yet")
    return repo


# Every client id a test committed, for the module's cleanup.
COMMITTED: list[str] = []


def new_client_id() -> str:
    client_id = f"gitops-{uuid.uuid4().hex[:6]}"
    COMMITTED.append(client_id)
    return client_id


@pytest.fixture(scope="module")
def argocd(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    argo = ArgoCD(tmp_path_factory.mktemp("argocd"), cluster.kubeconfig, die_with_parent=True)
    try:
        argo.start()
        yield argo
    finally:
        argo.stop()


@pytest.fixture(scope="module")
def root(
    argocd: ArgoCD, api: client.ApiClient, gitops: GitOpsRepository, cluster: ControlPlane
) -> Iterator[Argo]:
    """The root Application installed as Terraform installs it, pointing at the local
    git and chart repositories; removed (with everything it made) at the end."""
    # A cluster this ships to runs the Prometheus Operator (the operator chart's
    # ServiceMonitor and PrometheusRule): its CRDs are a prerequisite.
    if PROMETHEUS_CRDS.is_dir():
        for crd in sorted(PROMETHEUS_CRDS.glob("monitoring.coreos.com_*.yaml")):
            argocd.kubectl("apply", "--server-side", "-f", str(crd))
    argo = Argo(api)
    with ChartRepository(CHART_REPOSITORY) as charts:
        values = {
            "repoURL": gitops.url,
            "revision": gitops.branch,
            "chartRepositories": {
                key: charts.url for key in ("trino", "strimzi", "nessie", "minio", "cloudnativePg")
            },
        }
        helm = str(helm_build().paths()["helm"])
        subprocess.run(
            [
                helm,
                "--kubeconfig",
                str(cluster.kubeconfig),
                "install",
                "clientpipelines-root",
                str(REPO_ROOT / "argocd" / "bootstrap"),
                "-n",
                NAMESPACE,
                "--values",
                "-",
            ],
            input=json.dumps(values),
            capture_output=True,
            text=True,
            check=True,
        )
        try:
            yield argo
        finally:
            delete_root(argo)


def terminate_running_syncs(argo: Argo) -> None:
    for name, app in argo.applications().items():
        if (app.get("status") or {}).get("operationState", {}).get("phase") == "Running":
            with contextlib.suppress(ApiException):
                argo.objects.patch_namespaced_custom_object(
                    *ARGO, NAMESPACE, "applications", name,
                    {"status": {"operationState": {"phase": "Terminating"}}},
                )  # fmt: skip


def delete_root(argo: Argo) -> None:
    """Delete the root Application and wait until every Application is gone, as
    their finalizers say (Argo CD must still run to do it)."""
    # A sync still running (MinIO's bucket Job, a PostSync hook, never completes
    # without a kubelet) holds its Application's deletion: Argo CD deletes no app
    # while an operation runs (argoproj/argo-cd#17894). Stop them as `argocd app
    # terminate-op` does, and keep doing so while waiting: automated sync (selfHeal)
    # may start a new one on a child after the first pass, before the root's
    # deletion reaches it (a cold run here once lost that race).
    terminate_running_syncs(argo)
    with contextlib.suppress(ApiException):
        argo.objects.delete_namespaced_custom_object(
            *ARGO, NAMESPACE, "applications", "clientpipelines-root"
        )
    deadline = time.monotonic() + 300
    left = argo.applications()
    while left and time.monotonic() < deadline:
        time.sleep(1)
        terminate_running_syncs(argo)
        left = argo.applications()
    # Short: the whole Application hides the reason behind pytest's truncation.
    stuck = {
        n: {
            "deleting": bool(a["metadata"].get("deletionTimestamp")),
            "finalizers": a["metadata"].get("finalizers"),
            "operation": {
                k: ((a.get("status") or {}).get("operationState") or {}).get(k)
                for k in ("phase", "message")
            },
        }
        for n, a in left.items()
    }
    assert not left, f"Applications not deleted: {stuck}"


@pytest.fixture(scope="module")
def operator(
    root: Argo,
    api: client.ApiClient,
    cluster: ControlPlane,
    platform: Stack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator as a process, as in the other acceptance tests, watching the
    clients' namespace like the synced Deployment; started once Argo CD has
    installed the ClientPipeline CRD."""
    root.wait("synced (the CRD applied)", synced, "clientpipeline-operator", timeout=240)
    op = OperatorProcess(
        cluster,
        platform,
        tmp_path_factory.mktemp("argocd-operator"),
        extra_env={"WATCH_NAMESPACES": CLIENTS},
    )
    op.start()
    try:
        yield op
    finally:
        try:
            # Argo CD first (or it would sync the pipelines back), then the
            # ClientPipelines it does not delete (Delete=false), while the operator
            # runs to remove what they made.
            delete_root(root)
        finally:
            try:
                delete_pipelines(api)
            finally:
                op.stop()
                for client_id in COMMITTED:
                    unwire_client(platform, client_id)


def delete_pipelines(api: client.ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    for item in objects.list_namespaced_custom_object(GROUP, VERSION, CLIENTS, PLURAL)["items"]:
        with contextlib.suppress(ApiException):
            objects.delete_namespaced_custom_object(
                GROUP, VERSION, CLIENTS, PLURAL, item["metadata"]["name"]
            )
    wait_for(
        "every ClientPipeline to be deleted",
        lambda: not objects.list_namespaced_custom_object(GROUP, VERSION, CLIENTS, PLURAL)["items"],
        180,
    )


def test_the_root_syncs_every_application_and_their_objects_are_in_the_api_server(
    root: Argo, argocd: ArgoCD
) -> None:
    root.wait(
        "synced and healthy",
        lambda a: synced(a) and health_of(a) == "Healthy",
        "clientpipelines-root",
    )
    wait_for("every child Application", lambda: set(root.applications()) >= PLATFORM_APPS, 120)
    for name in sorted(PLATFORM_APPS - {"platform-resources"}):
        root.wait("synced", synced, name, timeout=300)
    # Without its pod, CloudNativePG's webhook cannot admit the Postgres Cluster:
    # that one object, for that reason, and nothing else of platform-resources.
    resources = root.wait(
        "synced but for the Postgres Cluster",
        lambda a: (
            [
                (r["kind"], r["status"])
                for r in (a or {}).get("status", {}).get("resources", [])
                if r["status"] != "Synced"
            ]
            == [("Cluster", "OutOfSync")]
            and "cnpg" in json.dumps(a["status"].get("operationState"))
        ),
        "platform-resources",
        timeout=300,
    )
    assert resources["status"]["operationState"]["phase"] in {"Running", "Failed", "Error"}

    # The objects each Application made are in the API server, as rendered from
    # this repository and the pinned charts (Argo CD's own record is not trusted).
    apps = root.applications()
    api_versions = tuple(argocd.kubectl("api-versions").split())
    for name in sorted(PLATFORM_APPS):
        app = apps[name]
        namespace = app["spec"]["destination"]["namespace"]
        rendered = render_application(app, api_versions)
        want = {
            (d["kind"], d["metadata"]["name"])
            for d in rendered
            if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})
        }
        tracked = {(r["kind"], r["name"]) for r in app["status"]["resources"]}
        assert want == tracked, f"{name}: rendered and synced differ: {want ^ tracked}"
        for d in rendered:
            if (d["kind"], d["metadata"]["name"]) not in want or d["kind"] == "Cluster":
                continue
            args = [
                "get",
                f"{d['kind']}.{d['apiVersion'].split('/')[0]}"
                if "/" in d["apiVersion"]
                else d["kind"],
                d["metadata"]["name"],
            ]
            if d["kind"] not in CLUSTER_SCOPED:
                args += ["-n", d["metadata"].get("namespace") or namespace]
            live = yaml.safe_load(argocd.kubectl(*args, "-o", "yaml"))
            # Everything rendered is live as rendered (the API server only adds
            # defaults); Secrets' values are not read back.
            for part in ("spec", "data", "rules", "roleRef", "subjects", "webhooks"):
                if part in d and not (d["kind"] == "Secret" and part == "data"):
                    differs = differences(d[part], live.get(part))
                    assert not differs, f"{name}: {d['kind']} {d['metadata']['name']}: {differs}"
    # Synced means equal to git: the trino coordinator's config is what was rendered.
    (trino_config,) = [
        d
        for d in render_application(apps["platform-trino"])
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "trino-coordinator"
    ]
    live = yaml.safe_load(
        argocd.kubectl("get", "configmap", "trino-coordinator", "-n", "data-platform", "-o", "yaml")
    )
    assert live["data"] == trino_config["data"]


def differences(rendered: Any, live: Any, path: str = "") -> list[str]:
    """Where `live` lacks or changes something of `rendered` (extra live fields,
    the API server's defaults, are fine)."""
    if rendered is None or rendered in ({}, [], ""):
        return []  # an empty rendered field is not stored
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            return [f"{path}: {live!r}"]
        found: list[str] = []
        for key, value in rendered.items():
            found += differences(value, live.get(key), f"{path}.{key}")
        return found
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [f"{path}: {len(rendered)} items rendered, live {live!r:.80}"]
        return [d for i, (r, v) in enumerate(zip(rendered, live, strict=True))
                for d in differences(r, v, f"{path}[{i}]")]  # fmt: skip
    # YAML's numbers and strings as the API server keeps them (ports), and
    # quantities as it normalizes them (1000m is 1).
    if str(rendered) == str(live) or same_quantity(rendered, live):
        return []
    return [f"{path}: {rendered!r} != {live!r}"]


def same_quantity(a: Any, b: Any) -> bool:
    try:
        return bool(parse_quantity(a) == parse_quantity(b))
    except (ValueError, TypeError):
        return False


def client_values(source: Any, client_id: str) -> str:
    """The example client's values, for `client_id` and its database on the stack."""
    values = yaml.safe_load((REPO_ROOT / "clients" / "acme-health" / "values.yaml").read_text())
    values["clientId"] = client_id
    values["source"].update(
        host=source.host,
        port=source.port,
        database=source.database,
        tables=TABLES,
        sslMode="disable",
        credentialsSecretName=f"{client_id}-db",
    )
    values["transform"]["schedule"] = QUIET_SCHEDULE
    values["deletionPolicy"] = "Delete"
    return yaml.safe_dump(values, sort_keys=False)


def test_a_client_committed_to_git_is_onboarded_and_removing_its_folder_keeps_its_pipeline(
    root: Argo,
    operator: OperatorProcess,
    api: client.ApiClient,
    gitops: GitOpsRepository,
    platform: Stack,
) -> None:
    client_id, broken = new_client_id(), new_client_id()
    app_name = f"client-{client_id}"
    names = ClientNames(client_id)
    samples = SampleData(platform)
    source = samples.create(client_id, rows=200, tables=TABLES)
    try:
        # The credentials are created out of band (never in git), then the values
        # are committed, as the onboarding app does. The second client's
        # credentials are never created.
        put_client_secret(api, CLIENTS, f"{client_id}-db", source)
        gitops.write(f"clients/{client_id}/values.yaml", client_values(source, client_id))
        gitops.write(f"clients/{broken}/values.yaml", client_values(samples.source(broken), broken))
        gitops.commit(f"onboard {client_id} and {broken}")
        root.refresh_clients()
        root.wait("created by the ApplicationSet", lambda a: a is not None, app_name, 120)
        wait_for("the ClientPipeline", lambda: get_pipeline(api, CLIENTS, client_id), 120)
        wait_ready(api, CLIENTS, client_id, timeout=240)
        # Argo CD itself reports it Healthy, through our Lua health check.
        root.wait("Healthy", lambda a: synced(a) and health_of(a) == "Healthy", app_name)
        agrees_with_lua(root, api, client_id)

        # Without its credentials: the operator says why, and Argo CD shows the
        # client Degraded, as the Lua computes from the live object.
        root.wait("Degraded", lambda a: health_of(a) == "Degraded", f"client-{broken}")
        live = get_pipeline(api, CLIENTS, broken)
        assert (condition(live, "Ready") or {}).get("reason") == "SecretNotFound"
        agrees_with_lua(root, api, broken)

        # (c) Removing the folder deletes the Application, never the pipeline.
        gitops.remove(f"clients/{client_id}")
        gitops.commit(f"offboard {client_id} from git")
        root.refresh_clients()
        wait_for("the Application to be deleted", lambda: root.application(app_name) is None, 120)
        time.sleep(15)  # the garbage collector and a controller resync have run
        kept = get_pipeline(api, CLIENTS, client_id)
        assert kept is not None and not kept["metadata"].get("deletionTimestamp")
        assert (condition(kept, "Ready") or {}).get("status") == "True"
        connect = KafkaConnectClient(platform.endpoints().connect_url)
        assert connect.get_config(names.connector) is not None
    finally:
        # Out of git first (Argo CD would sync them back), then offboarded on
        # purpose: deleting the ClientPipeline (README "Offboarding").
        for cid in (client_id, broken):
            if (gitops.directory / "clients" / cid).exists():
                gitops.remove(f"clients/{cid}")
        gitops.commit("offboard the test's clients")
        root.refresh_clients()
        wait_for(
            "their Applications to be deleted",
            lambda: not {f"client-{client_id}", f"client-{broken}"} & set(root.applications()),
            120,
        )
        for cid in (client_id, broken):
            with contextlib.suppress(ApiException):
                client.CustomObjectsApi(api).delete_namespaced_custom_object(
                    GROUP, VERSION, CLIENTS, PLURAL, cid
                )
        for cid in (client_id, broken):
            wait_for(f"{cid}'s ClientPipeline to be gone",
                     lambda cid=cid: get_pipeline(api, CLIENTS, cid) is None, 180)  # fmt: skip


def agrees_with_lua(root: Argo, api: client.ApiClient, client_id: str) -> None:
    """Argo CD's health of the ClientPipeline is what our Lua computes from the live
    object (read together until they agree: the status may move in between)."""

    def agree() -> bool:
        app = root.application(f"client-{client_id}") or {}
        live = get_pipeline(api, CLIENTS, client_id) or {}
        argo = resource_health(app, "ClientPipeline", client_id)
        return bool(argo) and argo == health(live)

    wait_for(f"Argo CD to report {client_id}'s health as the Lua computes it", agree, 60)


def test_a_change_to_the_operator_values_in_git_reaches_the_live_deployment(
    root: Argo, argocd: ArgoCD, gitops: GitOpsRepository
) -> None:
    path = "argocd/values/operator.yaml"
    values = yaml.safe_load((gitops.directory / path).read_text())
    values["driftIntervalSeconds"] = 77
    gitops.write(path, yaml.safe_dump(values, sort_keys=False))
    commit = gitops.commit("operator: drift checks every 77 s")
    root.refresh("clientpipeline-operator")
    root.wait(
        "synced to the new commit",
        lambda a: synced(a) and a["status"]["sync"].get("revision") == commit,
        "clientpipeline-operator",
    )

    def drift_interval() -> str | None:
        deployment = yaml.safe_load(
            argocd.kubectl(
                "get", "deployment", "clientpipeline-operator", "-n", "data-platform", "-o", "yaml"
            )
        )
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        return env.get("DRIFT_INTERVAL_SECONDS")

    assert wait_for("the new value in the Deployment", lambda: drift_interval() == "77", 60)


def test_deleting_the_root_removes_every_application_and_keeps_every_pipeline(
    root: Argo,
    operator: OperatorProcess,
    api: client.ApiClient,
    gitops: GitOpsRepository,
    platform: Stack,
) -> None:
    """Removing Argo CD's whole tree (the root, so the operator's Application) must
    not delete the ClientPipeline CRD, which would delete every pipeline."""
    client_id = new_client_id()
    source = SampleData(platform).source(client_id)
    gitops.write(f"clients/{client_id}/values.yaml", client_values(source, client_id))
    gitops.commit(f"onboard {client_id}")
    root.refresh_clients()
    before = wait_for("the ClientPipeline", lambda: get_pipeline(api, CLIENTS, client_id), 120)
    delete_root(root)
    time.sleep(10)  # the garbage collector would have acted by now
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert not crd.metadata.deletion_timestamp
    after = get_pipeline(api, CLIENTS, client_id)
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]
    assert not after["metadata"].get("deletionTimestamp")
