"""Kubernetes manifests shipped with the package; the CRD's single source is here.

The API coordinates (group, version, kind) and the labels the operator puts on what it
creates are defined next to the CRD, once; a unit test checks them against the CRD.
"""

from __future__ import annotations

from pathlib import Path

CRD_PATH = Path(__file__).with_name("clientpipeline-crd.yaml")
PEERING_CRDS_PATH = Path(__file__).with_name("kopf-peering-crds.yaml")

GROUP = "pipelines.promptly.io"
VERSION = "v1alpha1"
PLURAL = "clientpipelines"
KIND = "ClientPipeline"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels on the objects the operator creates (CronJob, its Jobs and Pods).
LABEL_CLIENT = f"{GROUP}/client"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "clientpipelines-operator"

# The operator chart's crds/ folder holds generated copies of these files
# (`uv run devstack gen-crds`); a unit test fails when they differ.
GENERATED_NOTICE = (
    "# GENERATED from operator/clientpipelines/manifests/{name} by `devstack gen-crds`:"
    " edit the source.\n"
)
SOURCES = (CRD_PATH, PEERING_CRDS_PATH)


def chart_copy(source: Path) -> str:
    """The text the chart's copy of `source` must have."""
    return GENERATED_NOTICE.format(name=source.name) + source.read_text()


# Set by the Job controller on its Pods (Kubernetes 1.27+): a run's Pod by its Job.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
