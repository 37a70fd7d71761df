"""The CRD file is well-formed and carries the admission rules the product relies on."""

from __future__ import annotations

import yaml

from clientpipelines.manifests import CRD_PATH
from clientpipelines.naming import CLIENT_ID_PATTERN, MAX_CLIENT_ID_LENGTH


def test_crd_name_rules_match_the_naming_module() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = " ".join(r["rule"] for r in schema["x-kubernetes-validations"])
    assert f"size(self.metadata.name) <= {MAX_CLIENT_ID_LENGTH}" in rules
    assert CLIENT_ID_PATTERN in rules
    printer = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert printer == ["Ready", "Mode", "Schedule", "Last run", "Age"]
