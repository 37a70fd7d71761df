"""Terraform conventions: pinned versions, a description on every variable and output."""

from __future__ import annotations

import re

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
