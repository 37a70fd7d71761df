"""`tofu fmt` over the Terraform code, with OpenTofu built from the Go module proxy.

`validate` needs the providers: the Helm provider's v2 and v3 are not served by the
Go module proxy, so it does not run here (README "Terraform").
"""

from __future__ import annotations

import subprocess

from devstack import binaries
from devstack.paths import REPO_ROOT


def test_terraform_files_are_formatted() -> None:
    tofu = binaries.build(binaries.tofu_build())["tofu"]
    result = subprocess.run(
        [str(tofu), "fmt", "-check", "-recursive", "-diff", "terraform"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
