"""Kubernetes manifests shipped with the package; the CRD's single source is here."""

from __future__ import annotations

from pathlib import Path

CRD_PATH = Path(__file__).with_name("clientpipeline-crd.yaml")
PEERING_CRDS_PATH = Path(__file__).with_name("kopf-peering-crds.yaml")

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
