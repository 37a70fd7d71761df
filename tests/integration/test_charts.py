"""The Helm charts: lint, render, server-side dry-run and a real install on the control plane."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.binaries import helm_build, kubernetes_build
from devstack.controlplane import ControlPlane
from devstack.operator import install_crd
from devstack.paths import REPO_ROOT
from devstack.procs import wait_for

CHARTS = REPO_ROOT / "charts"
SCENARIOS = sorted(
    (chart.name, values.name)
    for chart in CHARTS.iterdir()
    if (chart / "Chart.yaml").exists()
    for values in (chart / "ci").glob("*-values.yaml")
)
# The Prometheus Operator's CRDs (shared data beside the repository): with them the
# charts' monitoring objects are dry-run like the rest; without, they are left out.
PROMETHEUS_CRDS = REPO_ROOT.parent / "shared" / "crds" / "prometheus-operator"
MONITORING_KINDS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}
CLUSTER_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "ClusterKopfPeering",
}


def helm(*args: str, kubeconfig: Path | None = None, stdin: str | None = None) -> str:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/helm-cache",
        "HELM_CONFIG_HOME": "/tmp/helm-config",
    }
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        [str(helm_build().paths()["helm"]), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubernetes_build().paths()["kubectl"]), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def server_dry_run(control_plane: ControlPlane, docs: list[dict[str, Any]]) -> None:
    """Apply `docs` with --dry-run=server: the API server's own validation, every object."""
    result = kubectl(
        control_plane.kubeconfig,
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(docs)


@pytest.fixture(scope="module")
def crds(kube_api: client.ApiClient, control_plane: ControlPlane) -> None:
    install_crd(kube_api)
    peering = REPO_ROOT / "operator/clientpipelines/manifests/kopf-peering-crds.yaml"
    result = kubectl(control_plane.kubeconfig, "apply", "--server-side", "-f", str(peering))
    assert result.returncode == 0, result.stderr
    if not PROMETHEUS_CRDS.is_dir():
        return
    for plural in MONITORING_KINDS.values():
        crd = PROMETHEUS_CRDS / f"monitoring.coreos.com_{plural}.yaml"
        result = kubectl(control_plane.kubeconfig, "apply", "--server-side", "-f", str(crd))
        assert result.returncode == 0, result.stderr
    established(
        control_plane, *[f"crd/{p}.monitoring.coreos.com" for p in MONITORING_KINDS.values()]
    )


def established(control_plane: ControlPlane, *crds: str) -> None:
    """Wait until the CRDs serve (one just created has no conditions yet, and `kubectl
    wait` errors on that)."""
    wait_for(
        f"{', '.join(crds)} to be established",
        lambda: (
            kubectl(
                control_plane.kubeconfig,
                "wait",
                "--for=condition=Established",
                *crds,
                "--timeout=10s",
            ).returncode
            == 0
        ),
        timeout=60,
        interval=0.5,
    )


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=[f"{c}:{v}" for c, v in SCENARIOS])
def test_every_chart_scenario_lints_renders_and_passes_server_side_dry_run(
    crds: None, control_plane: ControlPlane, chart: str, values: str
) -> None:
    path = CHARTS / chart
    helm("lint", "--strict", str(path), "-f", str(path / "ci" / values))
    namespace = f"dry-{uuid.uuid4().hex[:6]}"
    kubectl(control_plane.kubeconfig, "create", "namespace", namespace)
    for ns in ("clients", "clients-a", "clients-b"):  # the scenarios' client namespaces
        kubectl(control_plane.kubeconfig, "create", "namespace", ns)
    rendered = helm(
        "template", "release", str(path), "-n", namespace, "-f", str(path / "ci" / values)
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert docs
    foreign = set() if PROMETHEUS_CRDS.is_dir() else set(MONITORING_KINDS)
    checked = [d for d in docs if d["kind"] not in foreign]
    for doc in checked:
        if doc["kind"] not in CLUSTER_KINDS:
            doc["metadata"].setdefault("namespace", namespace)
    server_dry_run(control_plane, checked)


def _can(
    api: client.ApiClient,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    subresource: str | None = None,
    groups: tuple[str, ...] = ("system:serviceaccounts",),
) -> bool:
    attrs: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attrs["namespace"] = namespace
    if subresource:
        attrs["subresource"] = subresource
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=list(groups),
                resource_attributes=client.V1ResourceAttributes(**attrs),
            )
        )
    )
    return bool(review.status.allowed)


def test_operator_chart_installs_and_grants_only_what_the_operator_uses(
    crds: None, control_plane: ControlPlane, kube_api: client.ApiClient
) -> None:
    namespace = f"op-{uuid.uuid4().hex[:6]}"
    chart = CHARTS / "clientpipeline-operator"
    helm(
        "install",
        "cpo",
        str(chart),
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        "watchNamespaces={clients-a}",
        kubeconfig=control_plane.kubeconfig,
    )
    deployments = client.AppsV1Api(kube_api).list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == ["cpo-clientpipeline-operator"]
    pod = deployments[0].spec.template.spec
    assert pod.security_context.run_as_non_root is True
    assert pod.containers[0].security_context.read_only_root_filesystem is True

    sa = f"system:serviceaccount:{namespace}:cpo-clientpipeline-operator"
    watched = "clients-a"
    allowed = [
        ("get", "secrets", ""),
        ("watch", "clientpipelines", "pipelines.promptly.io"),
        ("patch", "clientpipelines", "pipelines.promptly.io"),
        ("create", "cronjobs", "batch"),
        ("update", "cronjobs", "batch"),
        ("delete", "cronjobs", "batch"),  # first, on Delete: no run writes while the rest goes
        ("create", "deployments", "apps"),  # a continuous-mode pipeline's runner
        ("update", "deployments", "apps"),
        ("delete", "deployments", "apps"),
        ("list", "jobs", "batch"),
        ("create", "jobs", "batch"),  # a run-now request
        ("list", "pods", ""),  # a run's termination message
        ("create", "events", ""),
        ("create", "serviceaccounts", ""),  # each client's runs act as their own
    ]
    for verb, resource, group in allowed:
        assert _can(kube_api, sa, verb, resource, group=group, namespace=watched), (verb, resource)
    assert _can(
        kube_api,
        sa,
        "patch",
        "clientpipelines",
        group="pipelines.promptly.io",
        namespace=watched,
        subresource="status",
    )
    denied = [
        ("list", "secrets", "", watched),  # reads only the Secret a pipeline names
        ("delete", "jobs", "batch", watched),  # the garbage collector deletes them
        ("create", "pods", "", watched),
        ("get", "secrets", "", "clients-b"),  # a namespace it does not watch
        ("list", "clientpipelines", "pipelines.promptly.io", None),  # nothing cluster-wide
        ("create", "clusterroles", "rbac.authorization.k8s.io", None),
    ]
    for verb, resource, group, ns in denied:
        assert not _can(kube_api, sa, verb, resource, group=group, namespace=ns), (
            verb,
            resource,
            ns,
        )
    # It makes the clients' accounts, but never mints their tokens (the kubelet does).
    assert not _can(
        kube_api, sa, "create", "serviceaccounts", namespace=watched, subresource="token"
    )

    # People: the chart folds ClientPipeline rights into the built-in view and edit
    # roles, so an editor may suspend a pipeline or ask for a run (patch) and a
    # viewer may only look.
    rbac = client.RbacAuthorizationV1Api(kube_api)
    for user, role in (("alice", "edit"), ("bob", "view")):
        rbac.create_namespaced_role_binding(
            watched,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=f"{user}-{namespace}"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
                ),
                subjects=[client.RbacV1Subject(kind="User", name=user)],
            ),
        )
    try:

        def may(user: str, verb: str) -> bool:
            return _can(
                kube_api,
                user,
                verb,
                "clientpipelines",
                group="pipelines.promptly.io",
                namespace=watched,
                groups=("system:authenticated",),
            )

        wait_for("the aggregated roles to include ClientPipelines", lambda: may("alice", "patch"))
        assert may("bob", "get") and may("bob", "list")
        assert not may("bob", "patch")
    finally:
        for user in ("alice", "bob"):
            rbac.delete_namespaced_role_binding(f"{user}-{namespace}", watched)
    helm("uninstall", "cpo", "-n", namespace, kubeconfig=control_plane.kubeconfig)


def _cluster_wide_install(
    control_plane: ControlPlane, release: str, *settings: str
) -> tuple[str, str, str]:
    """The operator chart installed cluster-wide as `release` with one client namespace
    ({clients} in `settings` names it); returns (release namespace, clients, another)."""
    namespace, clients, other = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("op", "cl", "other"))
    for ns in (clients, other):
        kubectl(control_plane.kubeconfig, "create", "namespace", ns)
    sets = [f"clientNamespaces={{{clients}}}", *(s.format(clients=clients) for s in settings)]
    helm(
        "install",
        release,
        str(CHARTS / "clientpipeline-operator"),
        "-n",
        namespace,
        "--create-namespace",
        *(arg for s in sets for arg in ("--set", s)),
        kubeconfig=control_plane.kubeconfig,
    )
    return namespace, clients, other


def test_a_cluster_wide_install_reads_secrets_only_in_client_namespaces(
    crds: None, control_plane: ControlPlane, kube_api: client.ApiClient
) -> None:
    namespace, clients, other = _cluster_wide_install(control_plane, "cpw")
    try:
        sa = f"system:serviceaccount:{namespace}:cpw-clientpipeline-operator"
        # It watches every namespace...
        assert _can(kube_api, sa, "watch", "clientpipelines", group="pipelines.promptly.io")
        assert _can(kube_api, sa, "create", "cronjobs", group="batch", namespace=other)
        # ...and reads a Secret only where clients' Secrets live.
        assert _can(kube_api, sa, "get", "secrets", namespace=clients)
        assert not _can(kube_api, sa, "get", "secrets", namespace=other)
        assert not _can(kube_api, sa, "get", "secrets", namespace="kube-system")
        assert not _can(kube_api, sa, "get", "secrets")  # not cluster-wide
        assert not _can(kube_api, sa, "list", "secrets", namespace=clients)
        # Runner pods there reach DNS and the platform only.
        policy = client.NetworkingV1Api(kube_api).read_namespaced_network_policy(
            "cpw-clientpipeline-operator-runner", clients
        )
        assert policy.spec.policy_types == ["Ingress", "Egress"]
        assert policy.spec.pod_selector.match_labels == {
            "app.kubernetes.io/managed-by": "clientpipelines-operator"
        }
    finally:
        helm("uninstall", "cpw", "-n", namespace, kubeconfig=control_plane.kubeconfig)


def test_the_onboarding_app_may_create_but_never_read_secrets(
    crds: None, control_plane: ControlPlane, kube_api: client.ApiClient
) -> None:
    # Without the auth proxy's header the app would act for anyone: the chart refuses.
    chart = str(CHARTS / "clientpipeline-operator")
    refused = subprocess.run(
        [
            str(helm_build().paths()["helm"]),
            "template",
            "x",
            chart,
            "--set",
            "app.enabled=true",
            "--set",
            "app.trustedUserHeader=",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "trustedUserHeader" in refused.stderr, refused.stderr
    namespace, clients, other = _cluster_wide_install(
        control_plane, "cpa", "app.enabled=true", "app.clientsNamespace={clients}"
    )
    try:
        sa = f"system:serviceaccount:{namespace}:cpa-clientpipeline-operator-app"
        group = "pipelines.promptly.io"
        for verb in ("create", "get", "list", "patch"):  # create: the server-side dry-run too
            assert _can(kube_api, sa, verb, "clientpipelines", group=group, namespace=clients)
        assert _can(kube_api, sa, "create", "secrets", namespace=clients)
        assert _can(kube_api, sa, "list", "events", namespace=clients)
        # Never reads, changes or deletes a credential (other clients' are there too).
        for verb in ("get", "list", "watch", "update", "patch", "delete"):
            assert not _can(kube_api, sa, verb, "secrets", namespace=clients), verb
        assert not _can(kube_api, sa, "delete", "clientpipelines", group=group, namespace=clients)
        assert not _can(kube_api, sa, "create", "secrets", namespace=other)
        assert not _can(kube_api, sa, "list", "clientpipelines", group=group, namespace=other)
        policy = client.NetworkingV1Api(kube_api).read_namespaced_network_policy(
            "cpa-clientpipeline-operator-app", namespace
        )
        assert policy.spec.ingress[0]._from[0].pod_selector.match_labels == {
            "app.kubernetes.io/name": "oauth2-proxy"
        }
        service = client.CoreV1Api(kube_api).read_namespaced_service(
            "cpa-clientpipeline-operator-app", namespace
        )
        assert service.spec.type == "ClusterIP"
    finally:
        helm("uninstall", "cpa", "-n", namespace, kubeconfig=control_plane.kubeconfig)


ARGOCD_CRDS = REPO_ROOT.parent / "shared" / "crds" / "argocd"


@pytest.fixture(scope="module")
def argocd_crds(control_plane: ControlPlane) -> None:
    if not ARGOCD_CRDS.is_dir():
        pytest.skip(
            f"ArgoCD's CRDs are expected in {ARGOCD_CRDS} (the shared data beside the repository)"
        )
    for crd in sorted(ARGOCD_CRDS.glob("*-crd.yaml")):
        result = kubectl(control_plane.kubeconfig, "apply", "--server-side", "-f", str(crd))
        assert result.returncode == 0, result.stderr
    established(
        control_plane,
        "crd/applications.argoproj.io",
        "crd/applicationsets.argoproj.io",
        "crd/appprojects.argoproj.io",
    )
    kubectl(control_plane.kubeconfig, "create", "namespace", "argocd")


def test_argocd_manifests_pass_server_side_dry_run(
    argocd_crds: None, control_plane: ControlPlane
) -> None:
    repo = "file:///srv/git/clientpipelines.git"
    root_docs = [
        d
        for d in yaml.safe_load_all(
            helm(
                "template",
                "root",
                str(REPO_ROOT / "argocd" / "bootstrap"),
                "-n",
                "argocd",
                "--set",
                f"repoURL={repo}",
                "--set",
                "revision=v9",
            )
        )
        if d
    ]
    (root,) = root_docs
    # The root renders the app-of-apps chart with the same repository and revision,
    # and does not sync the folder it lives in.
    assert root["spec"]["source"]["path"] == "argocd/apps"
    apps_values = root["spec"]["source"]["helm"]["valuesObject"]
    assert (apps_values["repoURL"], apps_values["revision"]) == (repo, "v9")
    apps = [
        d
        for d in yaml.safe_load_all(
            helm(
                "template",
                "apps",
                str(REPO_ROOT / "argocd" / "apps"),
                "-n",
                "argocd",
                "--values",
                "-",
                stdin=yaml.safe_dump(apps_values),
            )
        )
        if d
    ]
    kinds = {d["kind"] for d in apps}
    assert kinds == {"Application", "ApplicationSet", "AppProject", "Namespace"}
    server_dry_run(control_plane, [root, *apps])
    # Written once: every source of ours is the given repository and revision.
    text = yaml.safe_dump_all(apps)
    assert "example.com" not in text
    for app in (d for d in apps if d["kind"] == "Application"):
        for source in app["spec"].get("sources") or [app["spec"]["source"]]:
            if "chart" not in source:
                assert (source["repoURL"], source["targetRevision"]) == (repo, "v9")
    # Removing a client's folder deletes its Application, never its ClientPipeline.
    (clients,) = [d for d in apps if d["kind"] == "ApplicationSet"]
    assert clients["spec"]["syncPolicy"]["preserveResourcesOnDeletion"] is True
    assert clients["spec"]["template"]["metadata"]["name"] == "client-{{ .path.basename }}"


def test_every_client_renders_to_a_valid_clientpipeline(
    crds: None, control_plane: ControlPlane
) -> None:
    clients = sorted((REPO_ROOT / "clients").glob("*/values.yaml"))
    assert clients
    kubectl(control_plane.kubeconfig, "create", "namespace", "clients")
    for values in clients:
        rendered = helm(
            "template",
            values.parent.name,
            str(CHARTS / "client-pipeline"),
            "-f",
            str(values),
            "-n",
            "clients",
        )
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        assert [d["kind"] for d in docs] == ["ClientPipeline"]
        assert docs[0]["metadata"]["name"] == values.parent.name
        # ArgoCD neither prunes it nor deletes it with its Application.
        options = docs[0]["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
        assert set(options.split(",")) == {"Prune=false", "Delete=false"}
        docs[0]["metadata"]["namespace"] = "clients"
        server_dry_run(control_plane, docs)


def test_trino_over_https_needs_the_operators_certificate_and_mounts_it() -> None:
    """With https the operator must present a certificate (Trino authenticates it); the
    chart refuses the values without one, and mounts the Secret read-only when given."""
    chart = str(CHARTS / "clientpipeline-operator")
    binary = str(helm_build().paths()["helm"])
    refused = subprocess.run(
        [binary, "template", "x", chart, "--set", "platform.trinoScheme=https"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "trinoTlsSecret" in refused.stderr, refused.stderr
    rendered = subprocess.run(
        [binary, "template", "x", chart, "-f", f"{chart}/ci/trino-tls-values.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["TRINO_HTTP_SCHEME"] == "https"
    assert env["TRINO_CLIENT_KEY_FILE"].startswith("/etc/clientpipelines/trino/")
    volume = next(v for v in pod["volumes"] if v["name"] == "trino-tls")
    assert volume["secret"]["secretName"] == "clientpipelines-operator-trino-tls"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "trino-tls")
    assert mount["readOnly"] is True
