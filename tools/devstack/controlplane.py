"""A real Kubernetes control plane as local processes, the way envtest runs one.

etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, with client
certificate authentication and RBAC. No kubelet runs, so pods stay Pending; the
controllers that matter to the product (cronjob, job, deployment and replicaset,
garbage collector, namespace, service account) do run.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack import binaries, procs
from devstack.paths import identity_root, run_root
from devstack.pki import (
    SERVICE_ACCOUNT_ISSUER,
    CertificateAuthority,
    KeyPair,
    write_service_account_keys,
)

# Controller names as kube-controller-manager --controllers spells them.
CONTROLLERS = (
    "cronjob-controller",
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    # Creates each namespace's `default` ServiceAccount, which the ServiceAccount
    # admission plugin requires before the job controller may create a Pod.
    "serviceaccount-controller",
    # Folds ClusterRoles labelled aggregate-to-view/edit/admin into those built-in
    # roles (the operator chart's userRoles).
    "clusterrole-aggregation-controller",
    # Removes the kubernetes.io/pvc-protection finalizer of a deleted claim no Pod
    # uses (Argo CD waits for a removed Application's claims to be gone).
    "persistentvolumeclaim-protection-controller",
)
# A Deployment's ReplicaSet and Pod (a continuous-mode pipeline's runner, which the
# local kubelet stand-in can then run). Off where no Pod of a Deployment will ever
# run (Argo CD's control plane): their rollouts would only time out there.
WORKLOAD_CONTROLLERS = ("deployment-controller", "replicaset-controller")

SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(procs.free_port(), procs.free_port(), procs.free_port())


class ControlPlane:
    """One control plane whose data, certificates, logs and PIDs live in `directory`.

    Starting a control plane that already runs (its PIDs alive and /readyz answering)
    reuses it; a stopped one restarts on the same data and, where still free, ports.
    """

    def __init__(
        self, directory: Path, *, die_with_parent: bool = False, workloads: bool = True
    ) -> None:
        self.directory = directory
        self.die_with_parent = die_with_parent
        self.controllers = CONTROLLERS + (WORKLOAD_CONTROLLERS if workloads else ())
        self.kubeconfig = directory / "kubeconfig"
        self._pki = directory / "pki"
        self._logs = directory / "logs"
        self._pids = directory / "pids"
        self._ports_file = directory / "ports.json"

    # -- state -----------------------------------------------------------------

    @property
    def ports(self) -> Ports:
        return Ports(**json.loads(self._ports_file.read_text()))

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def log(self, component: str) -> Path:
        return self._logs / f"{component}.log"

    def _pidfile(self, component: str) -> Path:
        return self._pids / f"{component}.pid"

    def pids(self) -> dict[str, int | None]:
        return {c: procs.read_pid(self._pidfile(c)) for c in self.components}

    components = ("etcd", "kube-apiserver", "kube-controller-manager")

    def is_ready(self) -> bool:
        if not self._ports_file.exists() or not self.kubeconfig.exists():
            return False
        try:
            return self._get("/readyz") == "ok"
        except OSError:
            return False

    # -- lifecycle ---------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> float:
        """Start what is not running and wait for /readyz; returns the seconds it took."""
        started = time.monotonic()
        bins = binaries.ensure_all()
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = self._choose_ports()
        ca = CertificateAuthority(self._pki)
        serving = ca.issue("apiserver", common_name="kube-apiserver", server=True)
        admin = ca.issue("admin", common_name="admin", organization="system:masters")
        kcm = ca.issue("controller-manager", common_name="system:kube-controller-manager")
        sa_keys = write_service_account_keys(identity_root())
        self._write_kubeconfig(self.kubeconfig, ca.pair.cert, admin, "admin")
        kcm_kubeconfig = self._write_kubeconfig(
            self.directory / "controller-manager.kubeconfig",
            ca.pair.cert,
            kcm,
            "kube-controller-manager",
        )

        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        self._ensure(
            "etcd",
            [
                str(bins["etcd"]),
                "--name=default",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # A throwaway dev store: skipping fsync makes API writes ~10x faster.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
            health=lambda: procs.http_ok(f"{etcd_url}/health"),
            timeout=timeout,
        )
        self._ensure(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.apiserver}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.pair.cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={sa_keys.cert}",
                f"--service-account-signing-key-file={sa_keys.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
            ],
            health=self.is_ready,
            timeout=timeout,
        )
        self._ensure(
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--controllers={','.join(self.controllers)}",
                "--leader-elect=false",
                # Nothing scrapes its metrics here; 0 turns the HTTPS endpoint off.
                "--secure-port=0",
                # Each controller acts as its own ServiceAccount with the bootstrap RBAC
                # roles (system:controller:*), as in a production cluster.
                "--use-service-account-credentials=true",
            ],
            health=self._controller_manager_started,
            timeout=timeout,
        )
        return time.monotonic() - started

    def stop(self) -> list[str]:
        """Stop every component (controller-manager first, etcd last); data is kept."""
        stopped = []
        for component in reversed(self.components):
            if procs.stop(self._pidfile(component)):
                stopped.append(component)
        return stopped

    # -- internals ---------------------------------------------------------------

    def _choose_ports(self) -> Ports:
        """Reuse the recorded ports (if the component still runs, or the port is free)."""
        if self._ports_file.exists():
            ports = self.ports
            running = self.pids()
            wanted = {
                "etcd": (ports.etcd_client, ports.etcd_peer),
                "kube-apiserver": (ports.apiserver,),
            }
            if all(
                running[c] is not None or all(procs.port_is_free(p) for p in ps)
                for c, ps in wanted.items()
            ):
                return ports
            # A port went to someone else while we were down: start over cleanly.
            self.stop()
        ports = Ports.pick()
        self._ports_file.write_text(json.dumps(ports.__dict__))
        return ports

    def _ensure(self, component: str, argv: list[str], *, health, timeout: float) -> None:  # type: ignore[no-untyped-def]
        pidfile = self._pidfile(component)
        # A process started with other flags (an older devstack: fewer controllers)
        # is restarted with these; the same flags reuse it.
        flags = pidfile.with_suffix(".argv")
        if procs.read_pid(pidfile) is not None and (
            not flags.exists() or flags.read_text() != "\0".join(argv)
        ):
            procs.stop(pidfile)
        if procs.read_pid(pidfile) is None:
            flags.parent.mkdir(parents=True, exist_ok=True)
            flags.write_text("\0".join(argv))
            procs.spawn(
                argv,
                log=self.log(component),
                pidfile=pidfile,
                die_with_parent=self.die_with_parent,
            )
        procs.wait_healthy(
            component, health, timeout=timeout, log=self.log(component), pidfile=pidfile
        )

    def _controller_manager_started(self) -> bool:
        # With --secure-port=0 it has no health endpoint; it logs each controller
        # it starts, so wait until every one we asked for is running.
        text = self.log("kube-controller-manager").read_text(errors="replace")
        return all(f'"Started controller" controller="{c}"' in text for c in self.controllers)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self._pki / "ca.crt"))
        ctx.load_cert_chain(str(self._pki / "admin.crt"), str(self._pki / "admin.key"))
        return ctx

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(  # noqa: S310 - loopback https only
            f"{self.server}{path}", context=self._ssl_context(), timeout=5
        ) as resp:
            return str(resp.read().decode())

    def _write_kubeconfig(self, path: Path, ca: Path, client: KeyPair, user: str) -> Path:
        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(ca),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(client.cert),
                        "client-key-data": b64(client.key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path


def default_directory() -> Path:
    """Where `devstack cluster up` keeps its long-lived control plane."""
    return run_root() / "controlplane"
