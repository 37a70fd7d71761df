"""The CRD file is well-formed and carries the admission rules the product relies on."""

from __future__ import annotations

import yaml

from clientpipelines import manifests
from clientpipelines.manifests import CRD_PATH
from clientpipelines.naming import CLIENT_ID_PATTERN, MAX_CLIENT_ID_LENGTH
from devstack.paths import REPO_ROOT


def test_crd_name_rules_match_the_naming_module() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = " ".join(r["rule"] for r in schema["x-kubernetes-validations"])
    assert f"size(self.metadata.name) <= {MAX_CLIENT_ID_LENGTH}" in rules
    assert CLIENT_ID_PATTERN in rules
    printer = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert printer == ["Ready", "Mode", "Schedule", "Last run", "Slot WAL", "Age"]


def test_the_operator_charts_crds_are_generated_from_the_single_source() -> None:
    crds = REPO_ROOT / "charts" / "clientpipeline-operator" / "crds"
    for source in manifests.SOURCES:
        copy = crds / source.name
        assert copy.exists(), f"missing {copy}: run `uv run devstack gen-crds`"
        assert copy.read_text() == manifests.chart_copy(source), (
            f"{copy} differs from {source}: run `uv run devstack gen-crds`"
        )
