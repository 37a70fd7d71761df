"""Whether this machine can run kind (the acceptance tier's Kubernetes-in-Docker)."""

from __future__ import annotations

import shutil
import subprocess


def docker_engine_available() -> bool:
    """True when a Docker engine answers; a docker client alone is not enough for kind."""
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0
