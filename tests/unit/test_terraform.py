"""Terraform conventions: pinned versions, a description on every variable and output."""

from __future__ import annotations

import re

import yaml

from devstack.argocd import argocd_cm_settings
from devstack.paths import REPO_ROOT

TF = sorted((REPO_ROOT / "terraform").rglob("*.tf"))
BLOCK = re.compile(r'^(variable|output)\s+"([^"]+)"\s*\{(.*?)^\}', re.M | re.S)


def test_every_variable_and_output_has_a_description() -> None:
    blocks = [
        (f, kind, name, body) for f in TF for kind, name, body in BLOCK.findall(f.read_text())
    ]
    assert blocks
    missing = [
        f"{f.relative_to(REPO_ROOT)}: {kind} {name}"
        for f, kind, name, body in blocks
        if "description" not in body
    ]
    assert not missing


def test_every_root_pins_terraform_and_its_providers() -> None:
    roots = {f.parent for f in TF}
    for root in roots:
        text = "".join(f.read_text() for f in root.glob("*.tf"))
        assert "required_version" in text, root
        for source, version in re.findall(
            r'source\s*=\s*"([^"]+)",?\s*version\s*=\s*"([^"]+)"', text
        ):
            assert version.startswith("~>"), (root, source, version)


def test_the_root_application_is_a_helm_release_after_argo_cds_own() -> None:
    """A kubernetes_manifest of an Application needs Argo CD's CRD when it is
    planned: on a fresh cluster the first apply failed."""
    main = (REPO_ROOT / "terraform/modules/argocd-bootstrap/main.tf").read_text()
    assert 'resource "kubernetes_manifest"' not in main
    root = main.split('resource "helm_release" "root"', 1)[1]
    assert "depends_on = [helm_release.argocd]" in root
    assert "argocd/bootstrap" in root


def test_terraform_registers_the_same_argocd_cm_keys_the_local_argo_cd_uses() -> None:
    """The local Argo CD (devstack.argocd) and the Terraform module read the same
    files into the same argocd-cm keys."""
    main = (REPO_ROOT / "terraform/modules/argocd-bootstrap/main.tf").read_text()
    keys = argocd_cm_settings()
    assert keys
    for key in keys:
        assert f'"{key}"' in main, key
    actions = yaml.safe_load(
        keys["resource.customizations.actions.pipelines.promptly.io_ClientPipeline"]
    )
    assert {d["name"] for d in actions["definitions"]} == {
        "restart-connector",
        "resume",
        "run-now",
        "suspend",
    }
