"""Build the control-plane binaries from the Go module proxy, cached by version.

Each binary is built from a small wrapper module under tools/ (go.mod and go.sum
committed there), so the build is reproducible and needs nothing but the Go
toolchain and the module proxy. A binary is rebuilt only when its version
directory is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.paths import REPO_ROOT, cache_root

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.7"
HELM_VERSION = "v3.19.5"
ARGOCD_VERSION = "v3.6.1"
TOFU_VERSION = "v1.12.6"


@dataclass(frozen=True)
class GoBuild:
    """One `go build` of one or more commands from a wrapper module under tools/."""

    name: str
    version: str
    module_dir: Path
    packages: dict[str, str]  # binary name -> Go package path
    ldflags: tuple[str, ...] = ()
    # Extra environment for `go` (e.g. GOTOOLCHAIN when the module needs a newer Go).
    env: tuple[tuple[str, str], ...] = ()

    @property
    def out_dir(self) -> Path:
        # The flags are part of the key: changing what is stamped rebuilds.
        flags = hashlib.sha256(" ".join(self.ldflags).encode()).hexdigest()[:8]
        return cache_root() / "bin" / f"{self.name}-{self.version}-{flags}"

    def paths(self) -> dict[str, Path]:
        return {binary: self.out_dir / binary for binary in self.packages}

    def is_built(self) -> bool:
        return all(p.is_file() and os.access(p, os.X_OK) for p in self.paths().values())


def _version_ldflags(packages: list[str], version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in packages:
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            # A fixed date keeps the build reproducible and the Go build cache warm.
            f"-X {pkg}.buildDate=2026-01-01T00:00:00Z",
        ]
    return tuple(flags)


def kubernetes_build() -> GoBuild:
    """kube-apiserver, kube-controller-manager and kubectl at KUBERNETES_VERSION."""
    return GoBuild(
        name="kubernetes",
        version=KUBERNETES_VERSION,
        module_dir=REPO_ROOT / "tools" / "k8s",
        packages={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        # Stamped so that clients (kubectl version, kopf, helm) see a real version.
        ldflags=_version_ldflags(
            ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"],
            KUBERNETES_VERSION,
        ),
    )


def etcd_build() -> GoBuild:
    return GoBuild(
        name="etcd",
        version=ETCD_VERSION,
        module_dir=REPO_ROOT / "tools" / "etcd",
        packages={"etcd": "."},
    )


def helm_build() -> GoBuild:
    return GoBuild(
        name="helm",
        version=HELM_VERSION,
        module_dir=REPO_ROOT / "tools" / "helm",
        packages={"helm": "helm.sh/helm/v3/cmd/helm"},
        ldflags=(
            f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            # The Kubernetes version `helm template` and `helm lint` assume, as helm's
            # own release build stamps it (otherwise v1.20, and charts asking for a
            # newer kubeVersion refuse to render).
            *(
                f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={value}"
                for pkg in ("chartutil", "lint/rules")
                for part, value in (("Major", "1"), ("Minor", KUBERNETES_VERSION.split(".")[1]))
            ),
        ),
    )


def argocd_build() -> GoBuild:
    """Argo CD's one binary; it acts as the component it is named after
    (argocd-application-controller, argocd-repo-server, ...) or as
    ARGOCD_BINARY_NAME says."""
    return GoBuild(
        name="argocd",
        version=ARGOCD_VERSION,
        module_dir=REPO_ROOT / "tools" / "argocd",
        packages={"argocd": "github.com/argoproj/argo-cd/v3/cmd"},
        ldflags=(
            f"-X github.com/argoproj/argo-cd/v3/common.version={ARGOCD_VERSION.lstrip('v')}",
            "-X github.com/argoproj/argo-cd/v3/common.buildDate=2026-01-01T00:00:00Z",
            "-X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean",
        ),
        # Argo CD 3.6 needs Go 1.27; the go command fetches that toolchain from the
        # module proxy.
        env=(("GOTOOLCHAIN", "go1.27.3"),),
    )


def tofu_build() -> GoBuild:
    """OpenTofu, for `tofu fmt` over terraform/ (validate needs the Helm provider,
    whose v2/v3 the Go module proxy does not serve: README "Terraform")."""
    return GoBuild(
        name="tofu",
        version=TOFU_VERSION,
        module_dir=REPO_ROOT / "tools" / "tofu",
        packages={"tofu": "github.com/opentofu/opentofu/cmd/tofu"},
        ldflags=("-X github.com/opentofu/opentofu/version.dev=no",),
    )


ALL_BUILDS = (etcd_build, kubernetes_build, helm_build)


def build(spec: GoBuild, *, log: bool = True) -> dict[str, Path]:
    """Build `spec` into its versioned cache directory unless it is already there."""
    if spec.is_built():
        return spec.paths()
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is needed to build the control plane: install Go")
    staging = spec.out_dir.with_name(spec.out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    if log:
        print(
            f"building {spec.name} {spec.version} from the Go module proxy "
            f"(first time only, several minutes) ...",
            file=sys.stderr,
            flush=True,
        )
    ldflags = " ".join(("-s", "-w", *spec.ldflags))
    env = {**os.environ, "CGO_ENABLED": "0", **dict(spec.env)}
    for binary, package in spec.packages.items():
        subprocess.run(
            [
                go,
                "build",
                "-trimpath",
                "-buildvcs=false",
                "-ldflags",
                ldflags,
                "-o",
                str(staging / binary),
                package,
            ],
            cwd=spec.module_dir,
            env=env,
            check=True,
        )
    # Publish atomically: a build interrupted half-way never looks complete.
    shutil.rmtree(spec.out_dir, ignore_errors=True)
    staging.rename(spec.out_dir)
    if log:
        print(
            f"built {spec.name} {spec.version} in {time.monotonic() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return spec.paths()


TOOL_BUILDS = (argocd_build, tofu_build)


def ensure_tools(*, log: bool = True) -> dict[str, Path]:
    """Argo CD and OpenTofu (the GitOps path's tests), building what is missing."""
    found: dict[str, Path] = {}
    for make_spec in TOOL_BUILDS:
        found.update(build(make_spec(), log=log))
    return found


def ensure_all(*, log: bool = True) -> dict[str, Path]:
    """Every control-plane binary, building what is missing."""
    found: dict[str, Path] = {}
    for make_spec in ALL_BUILDS:
        found.update(build(make_spec(), log=log))
    return found
