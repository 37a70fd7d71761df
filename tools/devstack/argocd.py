"""A real Argo CD as local processes against a control plane, as Argo CD's own
developers run it (its Procfile): Redis, the repo server, the application
controller and the ApplicationSet controller, from the one binary built by
`binaries.argocd_build()`. No API server: nothing here needs it.

Configured with Argo CD's own base config objects (from the module at the built
version) plus the product's `argocd-cm` settings: the ClientPipeline health check
and resource actions, read from argocd/resource_customizations as the Terraform
module reads them. Also here: a chart repository served over HTTP (the pinned
upstream charts) and a GitOps repository (a git repository Argo CD reads by a
file:// URL).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from devstack import binaries, procs
from devstack.paths import REPO_ROOT

NAMESPACE = "argocd"
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
CUSTOMIZATIONS = REPO_ROOT / "argocd" / "resource_customizations"
# How often the controllers look again (the defaults are 3 minutes).
RESYNC_SECONDS = 10

COMPONENTS = (
    "redis",
    "argocd-repo-server",
    "argocd-application-controller",
    "argocd-applicationset-controller",
)


def argocd_cm_settings() -> dict[str, str]:
    """The product's argocd-cm keys: for each customized kind, its health check and
    its resource actions (discovery script and one definition per action folder),
    in argocd-cm's format. terraform/modules/argocd-bootstrap writes the same keys
    from the same files for a real installation."""
    settings: dict[str, str] = {}
    for kind_dir in sorted(p for p in CUSTOMIZATIONS.glob("*/*") if p.is_dir()):
        key = f"{kind_dir.parent.name}_{kind_dir.name}"
        health = kind_dir / "health.lua"
        if health.is_file():
            settings[f"resource.customizations.health.{key}"] = health.read_text()
        actions = kind_dir / "actions"
        if (actions / "discovery.lua").is_file():
            settings[f"resource.customizations.actions.{key}"] = yaml.safe_dump(
                {
                    "discovery.lua": (actions / "discovery.lua").read_text(),
                    "definitions": [
                        {"name": a.parent.name, "action.lua": a.read_text()}
                        for a in sorted(actions.glob("*/action.lua"))
                    ],
                },
                sort_keys=False,
            )
    return settings


def module_dir() -> Path:
    """Argo CD's module source at the built version (downloaded from the proxy if needed)."""
    spec = binaries.argocd_build()
    env = {**os.environ, **dict(spec.env)}
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{ARGOCD_MODULE}@{spec.version}"],
        cwd=spec.module_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(out.stdout)["Dir"])


class ChartRepository:
    """A directory of packaged charts with its index.yaml, served over HTTP on loopback."""

    def __init__(self, directory: Path) -> None:
        if not (directory / "index.yaml").is_file():
            raise FileNotFoundError(f"{directory} has no index.yaml: not a chart repository")
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ChartRepository:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class GitOpsRepository:
    """A git repository holding this repository's files as one commit on `branch`,
    which tests change by committing, as a user's pull request would."""

    def __init__(self, directory: Path, *, branch: str = "main") -> None:
        self.directory = directory
        self.branch = branch

    @property
    def url(self) -> str:
        return f"file://{self.directory}"

    def _git(self, *args: str) -> str:
        env = {
            **os.environ,
            # Not the user's git configuration (commit signing, hooks).
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "devstack",
            "GIT_AUTHOR_EMAIL": "devstack@localhost",
            "GIT_COMMITTER_NAME": "devstack",
            "GIT_COMMITTER_EMAIL": "devstack@localhost",
        }
        return subprocess.run(
            ["git", *args], cwd=self.directory, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def create_from(self, source: Path = REPO_ROOT) -> str:
        """Copy `source`'s files as git sees them (tracked and new, not ignored, as
        they are in the working tree) and commit them; returns the commit."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", self.branch)
        for raw in listed:
            if not raw:
                continue
            rel = raw.decode()
            src = source / rel
            # Files only: a path deleted in the working tree is skipped, a symlink
            # is copied as the file it points to (this repository has neither
            # submodules nor symlinked folders).
            if not src.is_file():
                continue
            dst = self.directory / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return self.commit("the repository as it is")

    def write(self, rel: str, text: str) -> None:
        path = self.directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def remove(self, rel: str) -> None:
        self._git("rm", "-r", "-q", rel)

    def commit(self, message: str) -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")


@dataclass
class Ports:
    redis: int
    repo_server: int
    repo_server_metrics: int
    controller_metrics: int
    appset_metrics: int
    appset_probe: int
    appset_webhook: int

    @classmethod
    def pick(cls) -> Ports:
        ports: list[int] = []
        while len(ports) < 7:
            if (port := procs.free_port()) not in ports:
                ports.append(port)
        return cls(*ports)


class ArgoCD:
    """Argo CD's controllers as local processes; state, logs and PIDs in `directory`."""

    def __init__(self, directory: Path, kubeconfig: Path, *, die_with_parent: bool = False) -> None:
        self.directory = directory
        self.kubeconfig = kubeconfig
        self.die_with_parent = die_with_parent
        self.ports = Ports.pick()
        self._logs = directory / "logs"
        self._pids = directory / "pids"

    def log(self, component: str) -> Path:
        return self._logs / f"{component}.log"

    def _pidfile(self, component: str) -> Path:
        return self._pids / f"{component}.pid"

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        kubectl = binaries.build(binaries.kubernetes_build())["kubectl"]
        done = subprocess.run(
            [str(kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    # -- lifecycle ---------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> float:
        """Install Argo CD's CRDs and config, start its processes, wait until each
        answers; returns the seconds it took (the build, when needed, not counted)."""
        argocd = binaries.build(binaries.argocd_build())["argocd"]
        helm = binaries.build(binaries.helm_build())["helm"]
        source = module_dir()
        started = time.monotonic()
        self._install(source)
        env = self._environment(source, helm)
        p = self.ports
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError(
                "redis-server is needed for Argo CD (Debian: apt install redis-server)"
            )
        redis_addr = f"127.0.0.1:{p.redis}"
        commands = {
            "redis": [
                redis,
                "--port", str(p.redis), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
            ],
            "argocd-repo-server": [
                str(argocd),
                "--address", "127.0.0.1", "--port", str(p.repo_server),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(p.repo_server_metrics),
                "--redis", redis_addr,
            ],
            "argocd-application-controller": [
                str(argocd),
                "--namespace", NAMESPACE,
                "--repo-server", f"127.0.0.1:{p.repo_server}",
                "--redis", redis_addr,
                "--metrics-port", str(p.controller_metrics),
                "--app-resync", str(RESYNC_SECONDS), "--app-resync-jitter", "0",
            ],
            "argocd-applicationset-controller": [
                str(argocd),
                "--namespace", NAMESPACE,
                "--argocd-repo-server", f"127.0.0.1:{p.repo_server}",
                "--metrics-addr", f"127.0.0.1:{p.appset_metrics}",
                "--probe-addr", f"127.0.0.1:{p.appset_probe}",
                "--webhook-addr", f"127.0.0.1:{p.appset_webhook}",
            ],
        }  # fmt: skip
        checks = {
            "redis": lambda: _tcp_open(p.redis),
            "argocd-repo-server": lambda: procs.http_ok(
                f"http://127.0.0.1:{p.repo_server_metrics}/metrics"
            ),
            "argocd-application-controller": lambda: procs.http_ok(
                f"http://127.0.0.1:{p.controller_metrics}/metrics"
            ),
            # Its probe address serves no checks (none registered in v3.6.1): 404.
            "argocd-applicationset-controller": lambda: procs.http_ok(
                f"http://127.0.0.1:{p.appset_metrics}/metrics"
            ),
        }
        for component in COMPONENTS:
            procs.spawn(
                commands[component],
                log=self.log(component),
                pidfile=self._pidfile(component),
                env={**env, "ARGOCD_BINARY_NAME": component},
                cwd=self.directory,
                die_with_parent=self.die_with_parent,
            )
            procs.wait_healthy(
                component,
                checks[component],
                timeout=timeout,
                log=self.log(component),
                pidfile=self._pidfile(component),
            )
        return time.monotonic() - started

    def stop(self) -> None:
        for component in reversed(COMPONENTS):
            procs.stop(self._pidfile(component))

    def _environment(self, source: Path, helm: Path) -> dict[str, str]:
        tools = self.directory / "bin"
        tools.mkdir(parents=True, exist_ok=True)
        # The repo server runs `helm`, `git` and git-verify-wrapper.sh from PATH
        # (without the wrapper a git source fails with "permission denied").
        wrapper = tools / "git-verify-wrapper.sh"
        shutil.copyfile(source / "hack" / "git-verify-wrapper.sh", wrapper)
        wrapper.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            (tools / "helm").unlink()
        (tools / "helm").symlink_to(helm)
        data = {}
        for name in ("tls", "ssh", "gnupg", "gpg-data", "tmp"):
            data[name] = self.directory / name
            data[name].mkdir(parents=True, exist_ok=True)
        data["gnupg"].chmod(0o700)
        return {
            **os.environ,
            "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "KUBECONFIG": str(self.kubeconfig),
            # The in-cluster destination (https://kubernetes.default.svc) is the
            # kubeconfig's cluster.
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_TLS_DATA_PATH": str(data["tls"]),
            "ARGOCD_SSH_DATA_PATH": str(data["ssh"]),
            "ARGOCD_GNUPGHOME": str(data["gnupg"]),
            "ARGOCD_GPG_DATA_PATH": str(data["gpg-data"]),
            # Checkouts and Helm caches in this instance's folder, not /tmp.
            "TMPDIR": str(data["tmp"]),
            # The install manifests set these from argocd-cmd-params-cm; local
            # processes read only flags and the environment.
            "ARGOCD_RECONCILIATION_TIMEOUT": f"{RESYNC_SECONDS}s",
            "ARGOCD_APPLICATIONSET_CONTROLLER_REQUEUE_AFTER": f"{RESYNC_SECONDS}s",
            # v3 leaves each resource's health out of the Application's status
            # unless asked.
            "ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH": "true",
            "ARGOCD_LOG_FORMAT_ENABLE_FULL_TIMESTAMP": "true",
        }

    def _install(self, source: Path) -> None:
        # The ApplicationSet CRD is over client-side apply's annotation limit.
        crds = source / "manifests" / "crds"
        for name in ("application", "applicationset", "appproject"):
            self.kubectl(
                "apply", "--server-side", "--force-conflicts", "-f", str(crds / f"{name}-crd.yaml")
            )
        # A CRD created a moment ago has no conditions yet: `kubectl wait` errors then.
        procs.wait_for(
            "Argo CD's CRDs to be established",
            lambda: _succeeds(
                lambda: self.kubectl(
                    "wait", "--for=condition=Established", "--timeout=10s",
                    "crd/applications.argoproj.io", "crd/applicationsets.argoproj.io",
                    "crd/appprojects.argoproj.io",
                )
            ),
            timeout=60,
            interval=0.5,
        )  # fmt: skip
        self.kubectl(
            "apply", "-f", "-",
            stdin=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": NAMESPACE}}),
        )  # fmt: skip
        config = source / "manifests" / "base" / "config"
        docs = []
        for path in sorted(config.glob("argocd-*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                doc["metadata"]["namespace"] = NAMESPACE
                name = doc["metadata"]["name"]
                if name == "argocd-cm":
                    doc["data"] = {**(doc.get("data") or {}), **argocd_cm_settings()}
                if name == "argocd-secret":
                    # argocd-server normally fills this in; a random key per instance.
                    doc["stringData"] = {"server.secretkey": secrets.token_urlsafe(32)}
                docs.append(doc)
        # argocd-server creates the `default` project when it starts; it does not run here.
        docs.append(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": NAMESPACE},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            }
        )
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def _succeeds(action: Callable[[], object]) -> bool:
    try:
        action()
    except RuntimeError:
        return False
    return True


def _tcp_open(port: int) -> bool:
    return not procs.port_is_free(port)
