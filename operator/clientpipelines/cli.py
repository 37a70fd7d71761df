"""`kubectl cpl`: a platform engineer's view of and hands on ClientPipelines.

Installed with the package as `kubectl-cpl`, so kubectl finds it as a plugin:

    kubectl cpl status acme-health           conditions, connector, slot, last run, freshness
    kubectl cpl status acme-health --trino trino.platform:8080   ... and published row counts
    kubectl cpl run acme-health              run now and follow the run to its end
    kubectl cpl suspend|resume acme-health   stop / restart scheduled runs and CDC
    kubectl cpl restart-connector acme-health
    kubectl cpl logs acme-health             the last run's output
    kubectl cpl preview -f pipeline.yaml     what the operator would create; touches nothing

It acts only through the ClientPipeline (a spec field or a request annotation the
operator serves), so it needs no rights beyond `patch` on ClientPipelines: the
same path as ArgoCD's resource actions.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.naming import LAKE_CATALOG
from clientpipelines.operator import desired, requests
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import InvalidSpec, parse_spec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """Said on stderr as one line; exit 1."""


def _objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def get_pipeline(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    try:
        got = _objects(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            raise CliError(f"no ClientPipeline {name} in namespace {namespace}") from exc
        raise CliError(f"reading ClientPipeline {namespace}/{name}: HTTP {exc.status}") from exc
    if not isinstance(got, dict):
        raise CliError(f"reading ClientPipeline {namespace}/{name}: unexpected answer")
    return got


def _patch(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    get_pipeline(api, namespace, name)  # a clear error if it does not exist
    _objects(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _when(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def human_age(seconds: float) -> str:
    """3s, 4m 10s, 2h 5m, 3d 4h (pure)."""
    s = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {(s % size) // sub_size}{sub}"
    return f"{s // 60}m {s % 60}s" if s >= 60 else f"{s}s"


# -- status -----------------------------------------------------------------------------------


def status_lines(obj: Mapping[str, Any], now: dt.datetime) -> list[str]:
    """What `status` prints, from the object alone (pure)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    mode = (spec.get("ingestion") or {}).get("mode", "cdc")
    suspended = bool((spec.get("transform") or {}).get("suspend"))
    lines = [
        f"ClientPipeline {meta['namespace']}/{meta['name']}  mode {mode}"
        + ("  SUSPENDED" if suspended else "")
    ]
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        lines.append(f"  (the operator has not yet acted on generation {meta.get('generation')})")
    lines.append("conditions:")
    for c in status.get("conditions") or []:
        lines.append(
            f"  {c['type']:<24} {c['status']:<6} {c.get('reason', ''):<22} {c.get('message', '')}"
        )
    if not status.get("conditions"):
        lines.append("  none yet (is the operator running?)")
    connector = status.get("connector")
    if connector:
        tasks = ", ".join(f"{t['id']}:{t['state']}" for t in connector.get("tasks") or [])
        lines.append(
            f"connector: {connector.get('name')} {connector.get('state')}"
            f" (tasks {tasks or 'none'}; restarts {connector.get('restarts', 0)})"
        )
    slot = status.get("replicationSlot")
    if slot and slot.get("exists"):
        lines.append(
            f"replication slot: {slot['name']} holds {slot.get('retainedWal')} of WAL"
            f" (limit {slot.get('retainedWalLimit')}; "
            f"{'active' if slot.get('active') else 'INACTIVE: no connector reads it'};"
            f" wal_status {slot.get('walStatus')})"
        )
    elif slot:
        lines.append(f"replication slot: {slot['name']} does not exist yet")
    run = status.get("lastRun")
    if run:
        start, end = _when(run.get("startTime")), _when(run.get("completionTime"))
        took = f" in {human_age((end - start).total_seconds())}" if start and end else ""
        changed = f"; {run['changedKeys']} rows changed" if "changedKeys" in run else ""
        lines.append(f"last run: {run['job']} {run['phase']}{took}{changed}")
        for check in run.get("failedChecks") or []:
            lines.append(f"  failed: {check}")
        for test in run.get("warnedTests") or []:
            lines.append(f"  warned: {test}")
        if run.get("report"):
            lines.append(f"  report: {run['report']}")
    else:
        lines.append("last run: none yet")
    good = _when((status.get("lastSuccessfulRun") or {}).get("completionTime"))
    if good:
        lines.append(
            f"freshness: last successful run {human_age((now - good).total_seconds())} ago"
            f" ({status.get('failedRunsInARow', 0)} failed since)"
        )
    else:
        lines.append("freshness: never published")
    return lines


def published_counts(obj: Mapping[str, Any], trino: str) -> list[str]:
    """Row counts of the client's published tables (lake catalog, main branch).

    `trino` is host:port; who asks comes from the environment (TRINO_HTTP_SCHEME,
    TRINO_CA_FILE, TRINO_CLIENT_CERT_FILE and _KEY_FILE, or TRINO_TOKEN_FILE): a
    reader of the client's data, as Trino's access rules decide.
    """
    from clientpipelines.clients.trino import TrinoLogin  # noqa: PLC0415 - only with --trino

    host, _, port = trino.rpartition(":")
    spec = parse_spec(obj["metadata"]["name"], obj["metadata"]["namespace"], obj["spec"])
    login = dataclasses.replace(
        TrinoLogin.from_env(os.environ, user="kubectl-cpl"),
        host=host or trino,
        port=int(port) if host else 8080,
    )
    session = login.client()
    lines = ["published tables:"]
    for table in spec.tables:
        qualified = f"{LAKE_CATALOG}.{spec.names.lake_schema}.{table}"
        try:
            ((count,),) = session.query(f"select count(*) from {qualified}")  # noqa: S608
            lines.append(f"  {qualified}: {count} rows")
        except Exception as exc:
            lines.append(f"  {qualified}: not readable ({type(exc).__name__})")
    return lines


def cmd_status(api: client.ApiClient, args: argparse.Namespace) -> int:
    obj = get_pipeline(api, args.namespace, args.id)
    if args.output == "json":
        print(json.dumps(obj.get("status") or {}, indent=2))
        return EXIT_OK
    for line in status_lines(obj, _now()):
        print(line)
    if args.trino:
        for line in published_counts(obj, args.trino):
            print(line)
    return EXIT_OK


# -- actions ------------------------------------------------------------------------------------


def managed_by_argocd(obj: Mapping[str, Any]) -> bool:
    meta = obj["metadata"]
    return "argocd.argoproj.io/tracking-id" in (meta.get("annotations") or {}) or (
        "argocd.argoproj.io/instance" in (meta.get("labels") or {})
    )


def cmd_suspend(api: client.ApiClient, args: argparse.Namespace, *, suspend: bool) -> int:
    obj = get_pipeline(api, args.namespace, args.id)
    if managed_by_argocd(obj):
        print(
            "note: ArgoCD manages this pipeline; with self-heal it will undo this. "
            "Change spec.transform.suspend in git to make it last.",
            file=sys.stderr,
        )
    _patch(api, args.namespace, args.id, {"spec": {"transform": {"suspend": suspend}}})
    print(f"{args.id}: {'suspended' if suspend else 'resumed'}")
    return EXIT_OK


def _request(api: client.ApiClient, args: argparse.Namespace, key: str) -> str:
    value = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _patch(api, args.namespace, args.id, {"metadata": {"annotations": {key: value}}})
    return value


def cmd_restart_connector(api: client.ApiClient, args: argparse.Namespace) -> int:
    _request(api, args, requests.RESTART_CONNECTOR)
    print(f"{args.id}: restart requested; the operator restarts the connector and its tasks")
    return EXIT_OK


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := check()) is not None:
            return got
        time.sleep(1)
    raise CliError(f"timed out after {timeout:.0f}s waiting for {what}")


def _job_state(job: Any) -> str | None:
    for cond in job.status.conditions or []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return "Succeeded" if cond.type == "Complete" else "Failed"
    return None


def cmd_run(api: client.ApiClient, args: argparse.Namespace) -> int:
    obj = get_pipeline(api, args.namespace, args.id)
    spec = parse_spec(args.id, args.namespace, obj["spec"])
    request = _request(api, args, requests.RUN_NOW)
    name = requests.manual_job_name(spec.names.cronjob, request)
    batch = client.BatchV1Api(api)

    def job() -> Any:
        try:
            return batch.read_namespaced_job(name, args.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    _wait(f"the operator to start Job {name}", job, timeout=60)
    print(f"{args.id}: started Job {name}", flush=True)
    if not args.follow:
        return EXIT_OK
    timeout = args.timeout or spec.active_deadline + 120
    _follow_log(api, args.namespace, name)
    state = _wait(f"Job {name} to finish", lambda: _job_state(job()), timeout=timeout)
    run = (get_pipeline(api, args.namespace, args.id).get("status") or {}).get("lastRun") or {}
    print(f"{args.id}: Job {name} {state}")
    for check in run.get("failedChecks") or [] if run.get("job") == name else []:
        print(f"  failed: {check}")
    return EXIT_OK if state == "Succeeded" else EXIT_FAILED


def _run_pod(api: client.ApiClient, namespace: str, job: str) -> str | None:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    )
    named = [
        (p.metadata.creation_timestamp or _now(), str(p.metadata.name))
        for p in pods.items
        if p.metadata is not None
    ]
    return max(named)[1] if named else None


def _pod_log(api: client.ApiClient, namespace: str, pod: str, *, follow: bool) -> str | None:
    """The Pod's log; None when the cluster cannot serve it (no kubelet has the Pod)."""
    core = client.CoreV1Api(api)
    try:
        if follow:
            stream: Any = core.read_namespaced_pod_log(
                pod, namespace, follow=True, _preload_content=False
            )
            for chunk in stream.stream():
                sys.stdout.write(chunk.decode(errors="replace"))
            return ""
        return str(core.read_namespaced_pod_log(pod, namespace))
    except ApiException as exc:
        if exc.status in (400, 404, 500, 502, 503):
            return None
        raise


def _follow_log(api: client.ApiClient, namespace: str, job: str) -> None:
    pod = _wait(f"the Pod of Job {job}", lambda: _run_pod(api, namespace, job), timeout=120)
    # The log is there once the container started; until then the API answers 400.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _pod_log(api, namespace, pod, follow=True) is not None:
            return
        time.sleep(2)
    print(f"(the log of Pod {pod} is not available from the API server; following the Job)")


def cmd_logs(api: client.ApiClient, args: argparse.Namespace) -> int:
    obj = get_pipeline(api, args.namespace, args.id)
    run = (obj.get("status") or {}).get("lastRun")
    if not run:
        raise CliError(f"{args.id} has no run yet")
    pod = _run_pod(api, args.namespace, run["job"])
    if pod is None:
        raise CliError(
            f"the Pod of the last run ({run['job']}) is gone: its Job's history limit or "
            "TTL removed it; the status keeps its outcome (kubectl cpl status)"
        )
    text = _pod_log(api, args.namespace, pod, follow=False)
    if text is None:
        raise CliError(
            f"the API server cannot serve the log of Pod {pod}: no kubelet holds it "
            "(the Pod ran elsewhere, or its node is gone)"
        )
    sys.stdout.write(text)
    return EXIT_OK


# -- preview ----------------------------------------------------------------------------------


def preview_lines(obj: Mapping[str, Any], settings: Settings) -> list[str]:
    """What the operator would create for this ClientPipeline, from its pure builders (pure).

    The password is never read: the connector's and catalog's secret fields show
    where it would come from.
    """
    meta = obj.get("metadata") or {}
    spec = parse_spec(str(meta.get("name")), str(meta.get("namespace") or "default"), obj["spec"])
    names = spec.names
    ref = spec.secret
    from_secret = f"<from Secret {ref.name}, key {{}}>"
    lines = [f"ClientPipeline {spec.namespace}/{spec.client_id} ({spec.mode}) would create:"]
    if spec.cdc:
        config = desired.build_connector_config(
            spec,
            from_secret.format(ref.username_key),
            from_secret.format(ref.password_key),
            settings.kafka_bootstrap,
        )
        lines.append(f"  Kafka Connect connector {names.connector}:")
        lines += [f"    {k} = {v}" for k, v in sorted(config.items())]
        lines.append(
            f"  on {spec.host}:{spec.port}/{spec.database}: replication slot "
            f"{names.replication_slot}, publication {names.publication}"
        )
        lines.append("  Kafka topics:")
        lines += [f"    {names.topic(spec.schema, t)}" for t in spec.tables]
        lines.append(f"    {names.heartbeat_topic} (heartbeats)")
    catalogs = desired.build_catalogs(
        spec,
        settings,
        username=from_secret.format(ref.username_key),
        password=from_secret.format(ref.password_key),
    )
    lines.append("  Trino catalogs:")
    for catalog in catalogs.values():
        lines.append(f"    {catalog.name} ({catalog.connector})")
    lines.append(f"  Nessie branch {names.staging_branch} (from main)")
    cron = desired.build_cronjob(spec, settings, {"name": spec.client_id, "uid": "<uid>"})
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    lines.append(
        f"  CronJob {names.cronjob}: schedule {cron['spec']['schedule']!r}"
        f"{' (suspended)' if cron['spec'].get('suspend') else ''}, image {container['image']}"
    )
    lines.append(f"  published tables: {LAKE_CATALOG}.{names.lake_schema}.<table> on main")
    return lines


def preview_settings() -> Settings:
    """The operator's settings where the environment has them; placeholders otherwise."""
    import os  # noqa: PLC0415

    env = {
        "CONNECT_URL": "<operator CONNECT_URL>",
        "NESSIE_URL": "<operator NESSIE_URL>",
        "TRINO_HOST": "<operator TRINO_HOST>",
        "KAFKA_BOOTSTRAP": "<operator KAFKA_BOOTSTRAP>",
        "ICEBERG_CATALOG_PROPERTIES": "{}",
        "RUNNER_IMAGE": "<operator RUNNER_IMAGE>",
        **os.environ,
    }
    return Settings.from_env(env)


def cmd_preview(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "ClientPipeline"]
    if not docs:
        raise CliError(f"{args.file} holds no ClientPipeline")
    for obj in docs:
        try:
            lines = preview_lines(obj, preview_settings())
        except (InvalidSpec, KeyError) as exc:
            raise CliError(f"{args.file}: {exc}") from exc
        print("\n".join(lines))
    return EXIT_OK


# -- main -------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl cpl", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    sub = p.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="conditions, connector, slot, last run, freshness")
    status.add_argument("id")
    status.add_argument("--trino", help="host:port of Trino, to count the published rows")
    status.add_argument("-o", "--output", choices=["text", "json"], default="text")
    run = sub.add_parser("run", help="run the pipeline now and follow the run")
    run.add_argument("id")
    run.add_argument("--no-follow", dest="follow", action="store_false")
    run.add_argument("--timeout", type=float, help="seconds (default: activeDeadline + 120)")
    for name, text in (
        ("suspend", "stop scheduled runs and pause CDC"),
        ("resume", "resume scheduled runs and CDC"),
        ("restart-connector", "restart the CDC connector and all its tasks"),
        ("logs", "the last run's output"),
    ):
        sub.add_parser(name, help=text).add_argument("id")
    preview = sub.add_parser("preview", help="what the operator would create; touches nothing")
    preview.add_argument("-f", "--file", required=True, help="a ClientPipeline manifest, or -")
    return p


def _api(args: argparse.Namespace) -> client.ApiClient:
    try:
        config.load_kube_config(config_file=args.kubeconfig)
    except config.ConfigException:
        config.load_incluster_config()
    if args.namespace is None:
        try:
            _, context = config.list_kube_config_contexts(config_file=args.kubeconfig)
            args.namespace = context["context"].get("namespace") or "default"
        except config.ConfigException:
            args.namespace = "default"
    return client.ApiClient()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "preview":
            return cmd_preview(args)
        api = _api(args)
        commands: dict[str, Callable[[client.ApiClient, argparse.Namespace], int]] = {
            "status": cmd_status,
            "run": cmd_run,
            "suspend": lambda a, n: cmd_suspend(a, n, suspend=True),
            "resume": lambda a, n: cmd_suspend(a, n, suspend=False),
            "restart-connector": cmd_restart_connector,
            "logs": cmd_logs,
        }
        return commands[args.command](api, args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
