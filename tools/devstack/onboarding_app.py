"""The onboarding app against the local control plane and stack (`make app`), configured
as the operator chart's app part configures it in a cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clientpipelines.clients.trino import TrinoLogin
from devstack.binaries import helm_build
from devstack.paths import REPO_ROOT


def app_env(
    kubeconfig: Path,
    namespace: str,
    *,
    gitops_remote: str | None,
    trino: TrinoLogin,
    user_header: str | None = None,
) -> dict[str, str]:
    """The app's settings (clientpipelines/app/main.py lists them) for this machine:
    proposals to `gitops_remote`, or direct apply without one."""
    env = {
        "KUBECONFIG": str(kubeconfig),
        "CLIENTS_NAMESPACE": namespace,
        "HELM": str(helm_build().paths()["helm"]),
        "CLIENT_CHART": str(REPO_ROOT / "charts" / "client-pipeline"),
        # The clients page counts published rows as this principal.
        **trino.to_env(),
    }
    if gitops_remote:
        env["GITOPS_REMOTE"] = gitops_remote
    else:
        env["DIRECT_APPLY"] = "1"
    if user_header:
        env["TRUSTED_USER_HEADER"] = user_header
    return env


def app_argv(port: int, address: str = "127.0.0.1") -> list[str]:
    """The console script installed beside this interpreter."""
    script = Path(sys.executable).with_name("clientpipelines-app")
    return [str(script), "--port", str(port), "--address", address]


def exec_app(env: dict[str, str], port: int) -> None:
    os.execve(app_argv(port)[0], app_argv(port), {**os.environ, **env})  # noqa: S606
