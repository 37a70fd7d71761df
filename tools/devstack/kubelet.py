"""A stand-in for a kubelet: runs one Job's container as a local process.

The local control plane has no kubelet, so a Job's Pod stays Pending. For the demo
and the acceptance test this module does the kubelet's part for one Pod: it reads
the Job and its Pod from the API server (nothing is copied from the CronJob's
settings), binds the Pod to its Node (`local-kubelet`), resolves the container's
environment (values, Secret and ConfigMap references, envFrom), runs its command
here, and reports the exit code in the Pod's status, from which the job controller
marks the Job Complete or Failed. The image is not pulled: its entrypoint must
exist locally (the runner does).

Like a kubelet it keeps each container's output and serves it on its
`containerLogs` endpoint (HTTPS, the port its Node object advertises), so the
API server's `pods/log` works: `kubectl logs` and `kubectl cpl logs` read a run's
output as in a cluster, while this process lives.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client

from clientpipelines.runconfig import TERMINATION_LOG_ENV, TERMINATION_LOG_LIMIT
from devstack.pki import CertificateAuthority
from devstack.procs import wait_for

NODE = "local-kubelet"


def _secret(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    data = core.read_namespaced_secret(name, namespace).data or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _config_map(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    return dict(core.read_namespaced_config_map(name, namespace).data or {})


def _field(pod: Any, path: str) -> str:
    """A downward-API fieldRef: metadata.name/namespace or a label/annotation."""
    meta = pod.metadata
    for prefix, values in (
        ("metadata.labels", meta.labels),
        ("metadata.annotations", meta.annotations),
    ):
        if path.startswith(f"{prefix}['") and path.endswith("']"):
            return str((values or {}).get(path[len(prefix) + 2 : -2], ""))
    if path in ("metadata.name", "metadata.namespace"):
        return str(getattr(meta, path.split(".")[1]))
    raise NotImplementedError(f"fieldRef {path} is not supported by the local kubelet")


def resolve_env(
    core: client.CoreV1Api, namespace: str, container: Any, pod: Any = None
) -> dict[str, str]:
    """The container's environment as the kubelet would build it."""
    env: dict[str, str] = {}
    for source in container.env_from or []:
        if source.secret_ref:
            values = _secret(core, namespace, source.secret_ref.name)
        elif source.config_map_ref:
            values = _config_map(core, namespace, source.config_map_ref.name)
        else:
            continue
        env.update({f"{source.prefix or ''}{k}": v for k, v in values.items()})
    for var in container.env or []:
        if var.value_from is None:
            env[var.name] = var.value or ""
        elif var.value_from.secret_key_ref:
            ref = var.value_from.secret_key_ref
            env[var.name] = _secret(core, namespace, ref.name)[ref.key]
        elif var.value_from.config_map_key_ref:
            ref = var.value_from.config_map_key_ref
            env[var.name] = _config_map(core, namespace, ref.name)[ref.key]
        elif var.value_from.field_ref and pod is not None:
            env[var.name] = _field(pod, var.value_from.field_ref.field_path)
    return env


class _LogHandler(BaseHTTPRequestHandler):
    """GET /containerLogs/<namespace>/<pod>/<container>[?follow=true]: the kubelet API."""

    directory: Path

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        log = self.directory / f"{parts[1]}_{parts[2]}_{parts[3]}.log"
        if not log.exists():
            self.send_error(404, "no such container log")
            return
        follow = urllib.parse.parse_qs(url.query).get("follow") == ["true"]
        done = log.with_suffix(".done")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        with log.open("rb") as stream:
            while True:
                chunk = stream.read(65536)
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not follow or done.exists():
                    return
                else:
                    time.sleep(0.2)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the API server polls it


class _Kubelet:
    """This process's kubelet endpoint and the Node object that advertises it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="local-kubelet-"))
        pair = CertificateAuthority(self.directory / "pki").issue(
            "kubelet", common_name=NODE, server=True
        )
        handler = type("Handler", (_LogHandler,), {"directory": self.directory})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(pair.cert, pair.key)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        return self.directory / f"{namespace}_{pod}_{container}.log"

    def register(self, core: client.CoreV1Api) -> None:
        """The Node, advertising this endpoint (InternalIP only: the API server tries
        addresses in its preferred order, and a Hostname would not resolve)."""
        try:
            core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=NODE)))
        except client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
        now = dt.datetime.now(dt.UTC).isoformat()
        core.patch_node_status(
            NODE,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                }
            },
        )


_kubelet: _Kubelet | None = None
_kubelet_guard = threading.Lock()


def _this_kubelet(core: client.CoreV1Api) -> _Kubelet:
    global _kubelet  # noqa: PLW0603 - one endpoint per process, started on first use
    with _kubelet_guard:
        if _kubelet is None:
            _kubelet = _Kubelet()
        # Every time: another process (a demo, a test session) may have advertised
        # its own endpoint since.
        _kubelet.register(core)
        return _kubelet


def _bind(core: client.CoreV1Api, pod: Any) -> None:
    """Schedule the Pod onto this Node, as a scheduler would (its log needs a node)."""
    if pod.spec.node_name:
        return
    body = client.V1Binding(
        metadata=client.V1ObjectMeta(name=pod.metadata.name),
        target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE),
    )
    # The client cannot read the answer back into a V1Binding (kubernetes-client/python#825).
    core.create_namespaced_pod_binding(
        pod.metadata.name, pod.metadata.namespace, body, _preload_content=False
    )


def _run_logged(
    core: client.CoreV1Api,
    pod: Any,
    argv: list[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
) -> int:
    """Run the container's command; its output goes to `log` (the kubelet's copy) and
    to this process's stdout. Like a kubelet, the process is killed when its Pod is
    deleted (a Job past its deadline); 124 when it outlived `timeout`."""
    with log.open("wb") as out:
        # Its own process group: stopping the "container" stops everything it started.
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, args=(proc,))
        timer.start()
        finished = threading.Event()
        watcher = threading.Thread(
            target=_kill_when_deleted, args=(core, pod, proc, finished), daemon=True
        )
        watcher.start()
        try:
            assert proc.stdout is not None
            echo = getattr(sys.stdout, "buffer", None)  # absent when stdout is replaced
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if echo is not None:
                    echo.write(line)
                else:
                    sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()
            code = proc.wait()
        finally:
            expired = not timer.is_alive()
            timer.cancel()
            finished.set()
    log.with_suffix(".done").touch()
    return 124 if expired and code < 0 else code


def _kill_when_deleted(
    core: client.CoreV1Api, pod: Any, proc: subprocess.Popen[bytes], finished: threading.Event
) -> None:
    """Stop the container when its Pod is deleted, as a kubelet does: SIGTERM, then
    SIGKILL once the Pod's grace period is over (a continuous runner finishes its
    batch in between; a scheduled run's default handler ends it at once)."""
    while not finished.wait(2):
        try:
            live = core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        except client.exceptions.ApiException as exc:
            if exc.status != 404:
                continue
            live = None
        if live is None or (live.metadata and live.metadata.deletion_timestamp is not None):
            meta = live.metadata if live is not None else None
            grace = (meta.deletion_grace_period_seconds or 0) if meta is not None else 0
            print(
                f"local kubelet: Pod {pod.metadata.name} deleted; stopping it"
                f" (grace period {grace}s)",
                flush=True,
            )
            # As a container runtime does: SIGTERM to the container's main process
            # only (what it started finishes or is stopped by it), then everything.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            if not finished.wait(grace):
                _kill_group(proc)
            return


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _finish_deletion(core: client.CoreV1Api, pod: Any) -> None:
    """A Pod deleted while it ran waits for its kubelet to confirm the container
    stopped (a bound Pod is deleted gracefully): confirm it, as a kubelet does."""
    try:
        live = core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        if live.metadata and live.metadata.deletion_timestamp is not None:
            core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise


def project_tokens(core: client.CoreV1Api, pod: Any, container: Any) -> dict[str, str]:
    """Mint the tokens of the Pod's projected serviceAccountToken volumes (TokenRequest,
    bound to the Pod, as a kubelet does); their mount path -> the local folder."""
    volumes = {v.name: v for v in pod.spec.volumes or []}
    folders: dict[str, str] = {}
    for mount in container.volume_mounts or []:
        projected = getattr(volumes.get(mount.name), "projected", None)
        if projected is None:
            continue
        folder = Path(tempfile.mkdtemp(prefix=f"{pod.metadata.name}-{mount.name}-"))
        for source in projected.sources or []:
            want = source.service_account_token
            if want is None:
                continue
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[want.audience] if want.audience else [],
                    expiration_seconds=want.expiration_seconds or 3600,
                    bound_object_ref=client.V1BoundObjectReference(
                        api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
                    ),
                )
            )
            minted = core.create_namespaced_service_account_token(
                pod.spec.service_account_name or "default", pod.metadata.namespace, request
            )
            token = folder / want.path
            assert minted.status is not None
            token.write_text(minted.status.token)
            token.chmod(0o600)
        folders[mount.mount_path.rstrip("/")] = str(folder)
    return folders


def run_job(
    api: client.ApiClient,
    namespace: str,
    job_name: str,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> int:
    """Run the Job's (single) container locally; report the result in its Pod's status."""
    client.BatchV1Api(api).read_namespaced_job(job_name, namespace)  # 404 if there is none
    return run_pod(
        api,
        namespace,
        f"job-name={job_name}",
        f"Job {job_name}",
        extra_env=extra_env,
        timeout=timeout,
    )


def run_pod(
    api: client.ApiClient,
    namespace: str,
    label_selector: str,
    what: str,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> int:
    """Run the (single) container of the Pod a controller made for `what` (the Pod
    `label_selector` finds: a Job's, a Deployment's) until it exits or the Pod is
    deleted; report the result in the Pod's status. It is not restarted."""
    core = client.CoreV1Api(api)
    pod = wait_for(
        f"a controller to create the Pod of {what}",
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector=label_selector).items
                if p.metadata is not None and p.metadata.deletion_timestamp is None
            ),
            None,
        ),
        timeout=60,
        interval=0.5,
    )
    assert pod.spec is not None and pod.metadata is not None
    container = pod.spec.containers[0]
    argv = [*(container.command or []), *(container.args or [])]
    if not argv:
        raise RuntimeError(f"{what}'s container has no command: nothing to run locally")
    env = {**os.environ, **resolve_env(core, namespace, container, pod), **(extra_env or {})}
    # Projected ServiceAccount tokens, as a kubelet mounts them: here in a folder of
    # their own, and variables naming a path under the mount point follow it there.
    tokens = project_tokens(core, pod, container)
    for mount, folder in tokens.items():
        env = {
            k: folder + v[len(mount) :] if v.startswith(mount + "/") else v for k, v in env.items()
        }
    # The container's terminationMessagePath, as a kubelet mounts it: a file of its own.
    fd, name = tempfile.mkstemp(prefix=f"{pod.metadata.name}-", suffix=".termination-log")
    os.close(fd)
    message_file = Path(name)
    if TERMINATION_LOG_ENV in env:
        env[TERMINATION_LOG_ENV] = str(message_file)
    # Console scripts live beside this interpreter in the project's environment.
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    kubelet = _this_kubelet(core)
    _bind(core, pod)
    assert pod.metadata is not None
    log = kubelet.log_path(namespace, str(pod.metadata.name), container.name)
    started = dt.datetime.now(dt.UTC)
    _report(core, pod, "Running", started=started)
    print(
        f"local kubelet: running {what} in {namespace}: {' '.join(argv)}",
        file=sys.stderr,
        flush=True,
    )
    code = _run_logged(core, pod, argv, env, log, timeout)
    # The kubelet keeps at most 4096 bytes.
    message = message_file.read_bytes()[:TERMINATION_LOG_LIMIT].decode(errors="ignore")
    message_file.unlink()
    for folder in tokens.values():  # a kubelet unmounts them with the Pod
        shutil.rmtree(folder, ignore_errors=True)
    _report(
        core,
        pod,
        "Succeeded" if code == 0 else "Failed",
        started=started,
        exit_code=code,
        message=message,
    )
    _finish_deletion(core, pod)
    return code


def _report(
    core: client.CoreV1Api,
    pod: Any,
    phase: str,
    *,
    started: dt.datetime,
    exit_code: int | None = None,
    message: str = "",
) -> None:
    """Write the Pod's status as a kubelet would: phase and the container's state."""
    name = pod.spec.containers[0].name
    if exit_code is None:
        state: dict[str, Any] = {"running": {"startedAt": started.isoformat()}}
    else:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started.isoformat(),
                "finishedAt": dt.datetime.now(dt.UTC).isoformat(),
            }
        }
        if message:
            state["terminated"]["message"] = message
    body = {
        "status": {
            "phase": phase,
            "startTime": started.isoformat(),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if phase == "Running" else "False",
                    "lastTransitionTime": dt.datetime.now(dt.UTC).isoformat(),
                }
            ],
            "containerStatuses": [
                {
                    "name": name,
                    "image": pod.spec.containers[0].image,
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
    }
    for attempt in range(5):
        try:
            core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
            return
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                # The Pod is gone: its Job passed activeDeadlineSeconds (the Job
                # controller deletes its Pods) or was deleted. A kubelet has nothing
                # left to report to.
                print(f"local kubelet: Pod {pod.metadata.name} is gone; not reported", flush=True)
                return
            if exc.status != 409 or attempt == 4:
                raise
            time.sleep(0.2)
