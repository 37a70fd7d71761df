"""Argo CD Applications rendered as Argo CD renders them, for the tests: a packaged
upstream chart from the chart repository beside the repository (shared data), or a
chart folder of this repository, with the Application's value files and release name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devstack.paths import REPO_ROOT
from tests.integration.test_charts import helm

CHART_REPOSITORY = REPO_ROOT.parent / "shared" / "helm-charts"
# Kinds the charts render that have no namespace.
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "PriorityClass",
}


def _values_path(ref: str, source_path: str | None) -> Path:
    if ref.startswith("$values/"):
        return REPO_ROOT / ref.removeprefix("$values/")
    assert source_path is not None, ref
    return (REPO_ROOT / source_path / ref).resolve()


def chart_of(app: dict[str, Any]) -> tuple[str, list[Path], str]:
    """(chart: a packaged upstream chart or our folder, value files, release name)."""
    spec = app["spec"]
    sources = spec.get("sources") or [spec["source"]]
    main = next(s for s in sources if "ref" not in s)
    helm_opts = main.get("helm") or {}
    if "chart" in main:
        chart = str(CHART_REPOSITORY / f"{main['chart']}-{main['targetRevision']}.tgz")
        path = None
    else:
        chart = str(REPO_ROOT / main["path"])
        path = main["path"]
    values = [_values_path(v, path) for v in helm_opts.get("valueFiles") or []]
    return chart, values, helm_opts.get("releaseName") or app["metadata"]["name"]


def render_application(
    app: dict[str, Any], api_versions: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """What Application `app` deploys, as Argo CD renders it (CRDs included), for a
    cluster serving `api_versions` (charts add e.g. a ServiceMonitor when it does)."""
    chart, values, release = chart_of(app)
    args = ["template", release, chart, "-n", app["spec"]["destination"]["namespace"]]
    args += ["--include-crds"]
    for api_version in api_versions:
        args += ["--api-versions", api_version]
    for v in values:
        args += ["-f", str(v)]
    return [d for d in yaml.safe_load_all(helm(*args)) if d]
