"""Run the operator as a local process against a control plane and the stack.

Used by the integration tests, the benchmarks and the demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.manifests import CRD_PATH, GROUP, LABEL_CLIENT, PLURAL, VERSION
from devstack import procs
from devstack.controlplane import ControlPlane
from devstack.procs import wait_for
from devstack.stack import Stack, operator_env

DRIFT_INTERVAL = 8.0

# A schedule that does not fire while a test or benchmark runs. There is no
# kubelet here: a Job the CronJob controller starts on schedule stays Pending for
# ever, and being the newest Job it becomes status.lastRun ("Running"), hiding the
# run a test started by hand (that was the acceptance test's flaky "lastRun to show
# the run" timeout: it failed whenever it crossed a quarter hour of `*/15`).
QUIET_SCHEDULE = "0 3 1 1 *"


def install_crd(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD_PATH.read_text())
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = api.sanitize_for_serialization(
            ext.read_custom_resource_definition(body["metadata"]["name"])
        )
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        ext.replace_custom_resource_definition(body["metadata"]["name"], body)

    def established() -> bool:
        crd = api.sanitize_for_serialization(
            ext.read_custom_resource_definition(body["metadata"]["name"])
        )
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    wait_for(
        "the ClientPipeline CRD to be established",
        established,
        timeout=30,
        interval=0.2,
    )


class OperatorProcess:
    """`python -m clientpipelines.operator` with its log in `log`."""

    def __init__(
        self,
        control_plane: ControlPlane,
        stack: Stack,
        workdir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = procs.free_port()
        self.liveness_port = procs.free_port()
        self.env = {
            **os.environ,
            **operator_env(
                stack.endpoints(),
                control_plane.kubeconfig,
                drift_interval=DRIFT_INTERVAL,
                metrics_port=self.metrics_port,
                liveness_port=self.liveness_port,
            ),
            **(extra_env or {}),
        }
        self.log = workdir / "operator.log"
        self.pidfile = workdir / "operator.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = procs.spawn(
            [sys.executable, "-m", "clientpipelines.operator"],
            log=self.log,
            pidfile=self.pidfile,
            env=self.env,
            die_with_parent=True,
        )
        procs.wait_healthy(
            "operator",
            lambda: procs.http_ok(f"http://127.0.0.1:{self.liveness_port}/healthz"),
            timeout=60,
            log=self.log,
            pidfile=self.pidfile,
        )

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        procs.stop(self.pidfile, timeout=15)

    def metric(self, name: str, *labels: str) -> float:
        """Sum of a Prometheus metric's samples: all label sets, or those whose labels
        include each of `labels` (written as exposed: 'client="acme"')."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name)
            and not line.startswith("#")
            and all(label in line.rsplit(" ", 1)[0] for label in labels)
        )


@contextmanager
def running_operator(
    control_plane: ControlPlane, stack: Stack, workdir: Path
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(control_plane, stack, workdir)
    op.start()
    try:
        yield op
    finally:
        op.stop()


def put_client_secret(api: client.ApiClient, namespace: str, name: str, source: Any) -> None:
    """The client's login as the operator expects it: a Secret labelled for the client."""
    secret = client.V1Secret(
        # The operator uses no Secret that is not labelled for the client.
        metadata=client.V1ObjectMeta(name=name, labels={LABEL_CLIENT: source.client_id}),
        string_data={"username": source.username, "password": source.password},
    )
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, secret)


def pipeline_body(
    name: str,
    source: Any,
    *,
    secret: str,
    tables: list[str],
    policy: str = "Delete",
    schedule: str = QUIET_SCHEDULE,
    mode: str = "cdc",
    image: str | None = None,
) -> dict[str, Any]:
    transform: dict[str, Any] = {"schedule": schedule}
    if image:
        transform["image"] = image
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClientPipeline",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "postgres": {
                    "host": source.host,
                    "port": source.port,
                    "database": source.database,
                    "schema": source.schema,
                    "tables": tables,
                    "sslMode": "disable",
                    "credentialsSecretRef": {"name": secret},
                }
            },
            "ingestion": {"mode": mode},
            "transform": transform,
            "deletionPolicy": policy,
        },
    }


def get_pipeline(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return obj if isinstance(obj, dict) else None
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return None


def wait_ready(
    api: client.ApiClient, namespace: str, name: str, timeout: float = 180
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_pipeline(api, namespace, name)
        cond = condition(obj, "Ready")
        gen = (obj or {}).get("metadata", {}).get("generation")
        if cond and cond["status"] == "True" and cond.get("observedGeneration") == gen:
            return obj
        return None

    result: dict[str, Any] = wait_for(f"{name} to be Ready", check, timeout=timeout)
    return result
