"""The operator image and chart on a kind cluster (needs a Docker engine; skipped elsewhere).

Small on purpose: the image builds, loads into kind, the chart installs, the
operator's pod becomes ready and reconciles a ClientPipeline. The platform
services are not deployed here, so only the Kubernetes-side part (the CronJob)
can turn Ready; the others must report their unreachable service as a reason.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from devstack.binaries import helm_build
from devstack.docker import docker_engine_available
from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(
    not docker_engine_available(),
    reason="kind needs a running Docker engine (`docker info` failed); "
    "run on a machine with Docker to exercise this tier",
)

IMAGE = "clientpipelines-operator:acceptance"


def test_kind_cluster_serves_the_api(kind_cluster: Any) -> None:
    nodes = kind_cluster.kubectl("get", "nodes", "-o", "name")
    assert nodes.strip().startswith("node/")


def test_operator_chart_runs_on_kind_and_reports_conditions(kind_cluster: Any) -> None:
    subprocess.run(
        ["docker", "build", "-f", "images/Dockerfile", "--target", "operator", "-t", IMAGE, "."],
        cwd=REPO_ROOT,
        check=True,
    )
    kind_cluster.load_docker_image(IMAGE)
    helm = str(helm_build().paths()["helm"])
    subprocess.run(
        [
            helm,
            "install",
            "cpo",
            str(REPO_ROOT / "charts/clientpipeline-operator"),
            "-n",
            "clientpipelines-system",
            "--create-namespace",
            "--wait",
            "--timeout",
            "5m",
            "--set",
            "image.repository=clientpipelines-operator",
            "--set",
            "image.tag=acceptance",
            "--set",
            "image.pullPolicy=Never",
            "--kubeconfig",
            str(kind_cluster.kubeconfig_path),
        ],
        check=True,
    )
    kind_cluster.kubectl("create", "namespace", "clients")
    kind_cluster.kubectl(
        "-n",
        "clients",
        "create",
        "secret",
        "generic",
        "acme-health-db",
        "--from-literal=username=u",
        "--from-literal=password=p",
    )
    manifest = subprocess.run(
        [
            helm,
            "template",
            "acme-health",
            str(REPO_ROOT / "charts/client-pipeline"),
            "-f",
            str(REPO_ROOT / "clients/acme-health/values.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = REPO_ROOT / ".acceptance-client.yaml"
    path.write_text(manifest)
    try:
        kind_cluster.kubectl("-n", "clients", "apply", "-f", str(path))
    finally:
        path.unlink()

    deadline = time.monotonic() + 180
    conditions: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        obj = json.loads(
            kind_cluster.kubectl("-n", "clients", "get", "cpl", "acme-health", "-o", "json")
        )
        conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        if conditions.get("ScheduleReady", {}).get("status") == "True" and "Ready" in conditions:
            break
        time.sleep(2)
    assert conditions["ScheduleReady"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["CatalogsReady"]["reason"] == "TrinoUnavailable"
