"""`make demo`: the whole product on this machine, one step at a time.

Control plane and platform services up (reused when running), the CRD and the
operator, a demo client's source database and its ClientPipeline (rendered from
clients/<id>/values.yaml, the file ArgoCD syncs, with local endpoints), Ready,
a batch of changes, one pipeline run exactly as the CronJob would start it, and
the published tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes import config as kube_config

from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from devstack import kubelet, procs
from devstack.binaries import ensure_all, helm_build
from devstack.controlplane import ControlPlane, default_directory
from devstack.operator import install_crd, put_client_secret
from devstack.paths import REPO_ROOT, run_root
from devstack.procs import wait_for
from devstack.sampledata import SAMPLE_TABLES, ClientSource, SampleData
from devstack.stack import Stack, operator_env
from devstack.wiring import client_tables, wait_for_cdc

T = TypeVar("T")
NAMESPACE = "clients"
STEPS = 8


@dataclass
class Demo:
    cp: ControlPlane
    stack: Stack
    api: client.ApiClient
    step_no: int = 0

    def step(self, title: str, action: Callable[[], T]) -> T:
        self.step_no += 1
        started = time.monotonic()
        print(f"[{self.step_no}/{STEPS}] {title} ...", flush=True)
        result = action()
        print(
            f"[{self.step_no}/{STEPS}] {title}: done in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        return result


def operator_pidfile() -> Path:
    return run_root() / "operator" / "operator.pid"


def ensure_operator(cp: ControlPlane, stack: Stack, api: client.ApiClient) -> Path:
    """The CRD installed and the operator running as a background process (reused)."""
    install_crd(api)
    pidfile = operator_pidfile()
    log = pidfile.with_name("operator.log")
    if procs.read_pid(pidfile) is None:
        env = operator_env(
            stack.endpoints(),
            cp.kubeconfig,
            drift_interval=60,
            metrics_port=59190,
            liveness_port=59191,
        )
        procs.spawn(
            [sys.executable, "-m", "clientpipelines.operator"],
            log=log,
            pidfile=pidfile,
            env={**os.environ, **env},
        )
        procs.wait_healthy(
            "operator",
            lambda: procs.http_ok("http://127.0.0.1:59191/healthz"),
            timeout=60,
            log=log,
            pidfile=pidfile,
        )
    return log


def apply_client(
    api: client.ApiClient,
    stack: Stack,
    client_id: str,
    *,
    rows: int = 2000,
    values_file: Path | None = None,
    namespace: str = NAMESPACE,
    deletion_policy: str | None = None,
    schedule: str | None = None,
    tables: list[str] | None = None,
) -> ClientSource:
    """Source data (the values' tables, or `tables` instead), its Secret, and the
    ClientPipeline rendered from clients/<id>/values.yaml."""
    values = values_file or REPO_ROOT / "clients" / client_id / "values.yaml"
    chosen = tables
    if chosen is None:
        chosen = (
            yaml.safe_load(values.read_text())["source"]["tables"]
            if values.exists()
            else list(SAMPLE_TABLES)
        )
    src = SampleData(stack).create(client_id, rows=rows, tables=chosen)
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    put_client_secret(api, namespace, f"{client_id}-db", src)
    overrides = [
        f"clientId={client_id}",
        f"source.host={src.host}",
        f"source.port={src.port}",
        f"source.database={src.database}",
        "source.sslMode=disable",
        f"source.credentialsSecretName={client_id}-db",
    ]
    if deletion_policy:
        overrides.append(f"deletionPolicy={deletion_policy}")
    if schedule:
        overrides.append(f"transform.schedule={schedule}")
    if tables is not None:
        overrides.append(f"source.tables={{{','.join(tables)}}}")
    args = [
        str(helm_build().paths()["helm"]),
        "template",
        client_id,
        str(REPO_ROOT / "charts" / "client-pipeline"),
    ]
    if values.exists():
        args += ["-f", str(values)]
    for o in overrides:
        args += ["--set", o]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    manifest = next(d for d in yaml.safe_load_all(rendered) if d)
    objects = client.CustomObjectsApi(api)
    try:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    return src


def wait_ready(
    api: client.ApiClient,
    client_id: str,
    namespace: str = NAMESPACE,
    timeout: float = 240,
    show: bool = True,
) -> dict[str, Any]:
    """Wait for Ready=True of the current generation, printing conditions as they turn."""
    objects = client.CustomObjectsApi(api)
    seen: dict[str, str] = {}

    def check() -> dict[str, Any] | None:
        got = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, client_id)
        obj: dict[str, Any] = got if isinstance(got, dict) else {}
        for c in (obj.get("status") or {}).get("conditions") or []:
            state = f"{c['status']} ({c['reason']})"
            if show and seen.get(c["type"]) != state:
                print(f"      {c['type']:<15} {state}", flush=True)
            seen[c["type"]] = state
        ready = [
            c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"
        ]
        gen = obj["metadata"].get("generation")
        if ready and ready[0]["status"] == "True" and ready[0].get("observedGeneration") == gen:
            return obj
        return None

    result: dict[str, Any] = wait_for(
        f"{client_id} to be Ready", check, timeout=timeout, interval=0.5
    )
    return result


def run_pipeline_once(
    api: client.ApiClient, kubeconfig: Path, client_id: str, namespace: str = NAMESPACE
) -> int:
    """`kubectl create job --from=cronjob/<id>-pipeline`, then run it with the local kubelet."""
    names = ClientNames(client_id)
    job = f"{names.cronjob}-{time.strftime('%H%M%S')}{int(time.time() * 1000) % 1000:03d}"
    kubectl = str(ensure_all()["kubectl"])
    subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "create",
            "job",
            job,
            f"--from=cronjob/{names.cronjob}",
        ],
        check=True,
    )
    return kubelet.run_job(api, namespace, job)


def show_published(stack: Stack, client_id: str) -> None:
    ep = stack.endpoints()
    trino = ep.trino()
    schema = ClientNames(client_id).lake_schema
    for table in client_tables(stack, client_id):
        (count,) = trino.query(f"select count(*) from lake.{schema}.{table}")[0]
        print(f"      lake.{schema}.{table}: {count} rows")
    commit = ep.nessie().log("main", limit=1)[0]
    print(f"      published by Nessie commit {commit.hash[:12]} on main: {commit.message!r}")
    print(
        "      Elementary report: not produced here (its dbt package comes from dbt Hub, "
        "which this machine cannot reach); the runner said so in its output"
    )


def main(client_id: str = "summit-health") -> int:
    started = time.monotonic()
    cp = ControlPlane(default_directory())
    stack = Stack()
    demo = Demo(cp, stack, client.ApiClient())

    def platform() -> None:
        cp.start()
        stack.up()

    demo.step("control plane and platform services (reused when running)", platform)
    demo.api = kube_config.new_client_from_config(config_file=str(cp.kubeconfig))
    log = demo.step(
        "ClientPipeline CRD and the operator", lambda: ensure_operator(cp, stack, demo.api)
    )
    demo.step(
        f"source database and ClientPipeline of {client_id} (from clients/{client_id}/)",
        lambda: apply_client(demo.api, stack, client_id),
    )
    demo.step(f"wait for {client_id} to be Ready", lambda: wait_ready(demo.api, client_id))
    changes = demo.step(
        "a batch of inserts, updates and deletes in the client's Postgres",
        lambda: SampleData(stack).apply_changes(client_id, count=300, seed=int(time.time())),
    )
    print(f"      {changes}")
    demo.step("wait for the changes to reach Kafka", lambda: wait_for_cdc(stack, client_id))
    code = demo.step(
        "one pipeline run, as the CronJob starts it (local kubelet stand-in)",
        lambda: run_pipeline_once(demo.api, cp.kubeconfig, client_id),
    )
    if code != 0:
        print(f"the pipeline run failed with exit code {code} (see its output above)")
        return code
    demo.step("the published tables", lambda: show_published(stack, client_id))
    ep = stack.endpoints()
    print(f"""
summary: {client_id} onboarded, changes published, in {time.monotonic() - started:.0f}s.

Look around:
  export KUBECONFIG={cp.kubeconfig}
  kubectl get clientpipelines -A            # Ready, Mode, Schedule, Last run
  kubectl -n {NAMESPACE} describe clientpipeline {client_id}
  Trino:        {ep.trino_url}   (HTTPS: the stack's CA {ep.trino_ca_file};
                the administrator's certificate and key {" ".join(ep.trino_certs["admin"])})
  Nessie API:   {ep.nessie_url}/trees   (with the administrator's token:
                -H "Authorization: Bearer $(cat {ep.nessie_tokens["admin"]})")
  operator log: {log}
  service logs: make stack-logs SERVICE=trino
Run the demo again: make demo (reuses what runs). Stop everything:
  make demo-down                            # operator, platform services, control plane
""")
    return 0


def down() -> int:
    stopped = procs.stop(operator_pidfile())
    print(f"operator: {'stopped' if stopped else 'was not running'}")
    print(f"platform: stopped {', '.join(Stack().down()) or 'nothing'}")
    print(
        f"control plane: stopped {', '.join(ControlPlane(default_directory()).stop()) or 'nothing'}"
    )
    return 0
