"""`terraform fmt` over the Terraform code (validate needs providers: see the README)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devstack.paths import REPO_ROOT


@pytest.mark.skipif(
    shutil.which("terraform") is None and shutil.which("tofu") is None,
    reason="needs the terraform or tofu binary",
)
def test_terraform_files_are_formatted() -> None:
    binary = shutil.which("terraform") or shutil.which("tofu")
    result = subprocess.run(
        [str(binary), "fmt", "-check", "-recursive", "terraform"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
