"""Where the local tooling keeps its builds, downloads and running instances.

Everything lives outside the repository, under one root keyed by version, so a
clean clone finds what an earlier run built and a version bump rebuilds.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """Root of builds and downloads: $CLIENTPIPELINES_CACHE or ~/.cache/clientpipelines."""
    env = os.environ.get("CLIENTPIPELINES_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "clientpipelines"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_root() -> Path:
    """Data and state of the long-lived local instances (`make cluster-up`, `make stack-up`)."""
    env = os.environ.get("CLIENTPIPELINES_RUN")
    root = Path(env) if env else cache_root() / "run"
    root.mkdir(parents=True, exist_ok=True)
    return root


def identity_root() -> Path:
    """The key pair every local control plane signs ServiceAccount tokens with.

    Shared by the default control plane and the tests' own, so the local Trino,
    which authenticates those tokens, trusts all of them (a cluster's Trino would
    read the cluster's keys from its /openid/v1/jwks instead).
    """
    root = run_root() / "identity"
    root.mkdir(parents=True, exist_ok=True)
    return root
