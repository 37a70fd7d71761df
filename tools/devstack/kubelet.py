"""A stand-in for a kubelet: runs one Job's container as a local process.

The local control plane has no kubelet, so a Job's Pod stays Pending. For the demo
and the acceptance test this module does the kubelet's part for one Pod: it reads
the Job and its Pod from the API server (nothing is copied from the CronJob's
settings), resolves the container's environment (values, Secret and ConfigMap
references, envFrom), runs its command here, and reports the exit code in the
Pod's status, from which the job controller marks the Job Complete or Failed.
The image is not pulled: its entrypoint must exist locally (the runner does).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from clientpipelines.runconfig import TERMINATION_LOG_ENV, TERMINATION_LOG_LIMIT
from devstack.procs import wait_for


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


def run_job(
    api: client.ApiClient,
    namespace: str,
    job_name: str,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> int:
    """Run the Job's (single) container locally; report the result in its Pod's status."""
    core = client.CoreV1Api(api)
    client.BatchV1Api(api).read_namespaced_job(job_name, namespace)  # 404 if there is none
    pod = wait_for(
        f"the job controller to create the Pod of {job_name}",
        lambda: next(
            iter(core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items),
            None,
        ),
        timeout=60,
        interval=0.5,
    )
    assert pod.spec is not None
    container = pod.spec.containers[0]
    argv = [*(container.command or []), *(container.args or [])]
    if not argv:
        raise RuntimeError(f"Job {job_name}'s container has no command: nothing to run locally")
    env = {**os.environ, **resolve_env(core, namespace, container, pod), **(extra_env or {})}
    # The container's terminationMessagePath, as a kubelet mounts it: a file of its own.
    fd, name = tempfile.mkstemp(prefix=f"{job_name}-", suffix=".termination-log")
    os.close(fd)
    message_file = Path(name)
    if TERMINATION_LOG_ENV in env:
        env[TERMINATION_LOG_ENV] = str(message_file)
    # Console scripts live beside this interpreter in the project's environment.
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    started = dt.datetime.now(dt.UTC)
    _report(core, pod, "Running", started=started)
    print(
        f"local kubelet: running Job {namespace}/{job_name}: {' '.join(argv)}",
        file=sys.stderr,
        flush=True,
    )
    try:
        code = subprocess.run(argv, env=env, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        code = 124
    # The kubelet keeps at most 4096 bytes.
    message = message_file.read_bytes()[:TERMINATION_LOG_LIMIT].decode(errors="ignore")
    message_file.unlink()
    _report(
        core,
        pod,
        "Succeeded" if code == 0 else "Failed",
        started=started,
        exit_code=code,
        message=message,
    )
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
