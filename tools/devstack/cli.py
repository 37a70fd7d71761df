"""`devstack`: build and run the local control plane and the platform stack."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config

from clientpipelines import manifests, nessie_access
from devstack import artifacts, binaries
from devstack.controlplane import ControlPlane, default_directory
from devstack.operator import install_crd
from devstack.paths import REPO_ROOT
from devstack.procs import StartupError, tail
from devstack.sampledata import CLINICAL_TABLES, SAMPLE_TABLES, SampleData
from devstack.stack import SERVICES, Stack, endpoints_json, operator_env

NESSIE_RULES_VALUES = REPO_ROOT / "argocd" / "values" / "nessie-authorization.yaml"


def _cluster_up(_: argparse.Namespace) -> int:
    cp = ControlPlane(default_directory())
    took = cp.start()
    print(f"control plane ready in {took:.1f}s at {cp.server}", file=sys.stderr)
    print(f"export KUBECONFIG={cp.kubeconfig}")
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    cp = ControlPlane(default_directory())
    stopped = cp.stop()
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    if args.wipe:
        shutil.rmtree(cp.directory, ignore_errors=True)
        print(f"wiped {cp.directory}", file=sys.stderr)
    return 0


def _cluster_status(_: argparse.Namespace) -> int:
    cp = ControlPlane(default_directory())
    pids = cp.pids()
    for component, pid in pids.items():
        state = f"up (pid {pid})" if pid else "down"
        print(f"{component:<24} {state:<18} log: {cp.log(component)}")
    ready = cp.is_ready()
    print(f"{'/readyz':<24} {'ok' if ready else 'not ready'}")
    if ready:
        print(f"export KUBECONFIG={cp.kubeconfig}")
    return 0 if ready else 3


def _stack_up(_: argparse.Namespace) -> int:
    stack = Stack()
    took = stack.up()
    print(f"platform stack ready in {took:.1f}s", file=sys.stderr)
    _print_status(stack)
    return 0


def _stack_down(args: argparse.Namespace) -> int:
    stack = Stack()
    stopped = stack.down(wipe=args.wipe)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    if args.wipe:
        print(f"wiped {stack.directory}", file=sys.stderr)
    return 0


def _print_status(stack: Stack) -> bool:
    rows = stack.status()
    print(f"{'service':<10} {'state':<9} {'port':>6} {'pid':>8} {'RSS MB':>7}  {'version':<8} log")
    for r in rows:
        version = str(r["version"] or "-").split(" ")[0]
        print(
            f"{r['service']:<10} {r['state']:<9} {r['port']:>6} {r['pid'] or '-':>8} "
            f"{r['rss_mb']:>7}  {version:<8} {r['log']}"
        )
    print(f"{'total':<10} {'':<9} {'':>6} {'':>8} {sum(r['rss_mb'] for r in rows):>7}")
    return all(r["state"] == "up" for r in rows)


def _stack_status(_: argparse.Namespace) -> int:
    return 0 if _print_status(Stack()) else 3


def _stack_logs(args: argparse.Namespace) -> int:
    stack = Stack()
    services = [args.service] if args.service else list(SERVICES)
    for service in services:
        print(f"== {service}: {stack.log(service)}")
        if args.service:
            print(tail(stack.log(service), args.lines))
    return 0


def _stack_endpoints(_: argparse.Namespace) -> int:
    print(endpoints_json(Stack()))
    return 0


def _seed(args: argparse.Namespace) -> int:
    data = SampleData()
    for client in args.client:
        started = time.monotonic()
        tables = args.tables.split(",") if args.tables else SAMPLE_TABLES
        if args.tables == "clinical":
            tables = CLINICAL_TABLES
        src = data.create(
            client, rows=args.rows, seed=args.seed, replace=args.replace, tables=tables
        )
        print(
            f"{client}: database {src.database} on {src.host}:{src.port} "
            f"(user {src.username}) ready in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
    return 0


def _changes(args: argparse.Namespace) -> int:
    done = SampleData().apply_changes(args.client, count=args.count, seed=args.seed)
    print(json.dumps({"client": args.client, **done}))
    return 0


def _operator(args: argparse.Namespace) -> int:
    """Install the CRD into the local control plane and run the operator in the foreground."""
    cp = ControlPlane(default_directory())
    if not cp.is_ready():
        print("error: the control plane is not running: make cluster-up", file=sys.stderr)
        return 2
    api = kube_config.new_client_from_config(config_file=str(cp.kubeconfig))
    install_crd(api)
    env = {
        **os.environ,
        **operator_env(Stack().endpoints(), cp.kubeconfig, drift_interval=args.drift_interval),
    }
    print(f"operator: watching every namespace of {cp.server}; Ctrl-C stops it", file=sys.stderr)
    os.execvpe(sys.executable, [sys.executable, "-m", "clientpipelines.operator"], env)  # noqa: S606
    return 0  # not reached


def _app(args: argparse.Namespace) -> int:
    """Serve the onboarding app against the local control plane (the demo's namespace)."""
    from devstack import demo, onboarding_app  # noqa: PLC0415

    cp = ControlPlane(default_directory())
    if not cp.is_ready():
        print(
            "error: the control plane is not running: make cluster-up (or make demo)",
            file=sys.stderr,
        )
        return 2
    api = kube_config.new_client_from_config(config_file=str(cp.kubeconfig))
    install_crd(api)
    env = onboarding_app.app_env(
        cp.kubeconfig,
        demo.NAMESPACE,
        gitops_remote=args.gitops_remote,
        trino=Stack().endpoints().trino_login(),
    )
    where = f"branches to {args.gitops_remote}" if args.gitops_remote else "direct apply"
    print(
        f"onboarding app: http://127.0.0.1:{args.port}/ (namespace {demo.NAMESPACE}, {where});"
        " Ctrl-C stops it",
        file=sys.stderr,
    )
    onboarding_app.exec_app(env, args.port)
    return 0  # not reached


def _add_processes(sub: Any) -> None:
    """The product's own processes, run against the local control plane."""
    op = sub.add_parser("operator", help="run the operator against the local control plane")
    op.add_argument("--drift-interval", type=float, default=60.0, help="seconds")
    op.set_defaults(func=_operator)
    app = sub.add_parser("app", help="serve the onboarding app against the local control plane")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument(
        "--gitops-remote", help="a git URL to push onboarding branches to (default: direct apply)"
    )
    app.set_defaults(func=_app)


def _gen_crds(_: argparse.Namespace) -> int:
    """Write the operator chart's crds/ from the single sources."""
    target = REPO_ROOT / "charts" / "clientpipeline-operator" / "crds"
    target.mkdir(parents=True, exist_ok=True)
    for source in manifests.SOURCES:
        (target / source.name).write_text(manifests.chart_copy(source))
        print(f"wrote {target / source.name}")
    return 0


def _gen_nessie_rules(_: argparse.Namespace) -> int:
    """Write Nessie's authorization rules for the deployed platform (argocd/values/)."""
    NESSIE_RULES_VALUES.write_text(nessie_rules_values())
    print(f"wrote {NESSIE_RULES_VALUES}")
    return 0


def nessie_rules_values() -> str:
    """What argocd/values/nessie-authorization.yaml holds: the rules for the platform
    as argocd/ deploys it."""
    return nessie_access.chart_values(platform_namespace(), deployed_client_namespaces())


def platform_namespace() -> str:
    """The namespace argocd/apps deploys the platform to (its platformNamespace)."""
    values = yaml.safe_load((REPO_ROOT / "argocd" / "apps" / "values.yaml").read_text())
    return str(values["platformNamespace"])


def deployed_client_namespaces() -> list[str]:
    """The namespaces the deployed operator takes clients in (its clientNamespaces)."""
    values = yaml.safe_load((REPO_ROOT / "argocd" / "values" / "operator.yaml").read_text())
    return [str(n) for n in values["clientNamespaces"]]


def _gen_chart_docs(_: argparse.Namespace) -> int:
    """Write each chart's README from its Chart.yaml and values.yaml."""
    from devstack import chartdocs  # noqa: PLC0415

    for chart in chartdocs.charts():
        (chart / "README.md").write_text(chartdocs.render(chart))
        print(f"wrote {chart / 'README.md'}")
    return 0


def _gen_omop(args: argparse.Namespace) -> int:
    """Write the OMOP CDM data, dbt macro, models and tests from the CDM's definition."""
    from devstack import omopgen  # noqa: PLC0415

    if not (args.cdm / "OMOP_CDMv5.4_Field_Level.csv").exists():
        print(f"no OMOP CDM v5.4 definition in {args.cdm} (pass --cdm DIR)", file=sys.stderr)
        return 2
    changed = omopgen.generate(args.cdm)
    for path in changed:
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    print(f"{len(changed)} file(s) changed")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from devstack import demo  # noqa: PLC0415 - only the demo needs it

    return demo.down() if args.down else demo.main(args.client)


def _build(_: argparse.Namespace) -> int:
    started = time.monotonic()
    for name, path in binaries.ensure_all().items():
        print(f"{name:<24} {path}")
    # The GitOps tools the tests use: Argo CD (a cold build took 444 s on 2 cores)
    # and OpenTofu.
    for name, path in binaries.ensure_tools().items():
        print(f"{name:<24} {path}")
    for name, path in vars(artifacts.ensure_all()).items():
        print(f"{name:<24} {path}")
    print(f"binaries ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "build",
        help="build the control plane, Argo CD and OpenTofu, fetch the platform services (cached)",
    ).set_defaults(func=_build)
    cluster = sub.add_parser("cluster", help="the local Kubernetes control plane")
    csub = cluster.add_subparsers(dest="action", required=True)
    csub.add_parser("up", help="start (or reuse) it; prints the KUBECONFIG to export").set_defaults(
        func=_cluster_up
    )
    down = csub.add_parser("down", help="stop it; data is kept unless --wipe")
    down.add_argument("--wipe", action="store_true", help="also delete its data")
    down.set_defaults(func=_cluster_down)
    csub.add_parser("status", help="each component's PID and /readyz").set_defaults(
        func=_cluster_status
    )
    stack = sub.add_parser("stack", help="the local platform services")
    ssub = stack.add_subparsers(dest="action", required=True)
    ssub.add_parser("up", help="start (or reuse) every service and wait for health").set_defaults(
        func=_stack_up
    )
    sdown = ssub.add_parser("down", help="stop every service; data is kept unless --wipe")
    sdown.add_argument("--wipe", action="store_true", help="also delete the services' data")
    sdown.set_defaults(func=_stack_down)
    ssub.add_parser("status", help="each service: state, port, PID, version").set_defaults(
        func=_stack_status
    )
    slogs = ssub.add_parser("logs", help="where the logs are; with a service, its tail")
    slogs.add_argument("service", nargs="?", choices=SERVICES)
    slogs.add_argument("-n", "--lines", type=int, default=40)
    slogs.set_defaults(func=_stack_logs)
    ssub.add_parser("endpoints", help="URLs and ports as JSON (no secrets)").set_defaults(
        func=_stack_endpoints
    )
    d = sub.add_parser("demo", help="the whole product locally, step by step")
    d.add_argument("--client", default="summit-health")
    d.add_argument("--down", action="store_true", help="stop the operator, stack, control plane")
    d.set_defaults(func=_demo)
    sub.add_parser("gen-crds", help="copy the CRDs into the operator chart").set_defaults(
        func=_gen_crds
    )
    sub.add_parser(
        "gen-chart-docs", help="write each chart's README from its values.yaml"
    ).set_defaults(func=_gen_chart_docs)
    sub.add_parser(
        "gen-nessie-rules", help="write Nessie's authorization rules into argocd/values/"
    ).set_defaults(func=_gen_nessie_rules)
    gen = sub.add_parser(
        "gen-omop", help="generate the OMOP CDM tables' data, dbt models and tests"
    )
    gen.add_argument(
        "--cdm",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "omop-cdm-5.4",
        help="directory with OHDSI's OMOP_CDMv5.4_*.csv",
    )
    gen.set_defaults(func=_gen_omop)
    _add_processes(sub)
    seed = sub.add_parser("seed", help="create clients' source databases with sample OMOP data")
    seed.add_argument("--client", action="append", required=True, help="client id (repeatable)")
    seed.add_argument(
        "--rows", type=int, default=2000, help="persons, providers, events per table (scaled)"
    )
    seed.add_argument(
        "--tables",
        help="comma-separated OMOP CDM tables, or 'clinical' for every clinical table "
        "(default: provider,care_site)",
    )
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--replace", action="store_true", help="drop and recreate the database")
    seed.set_defaults(func=_seed)
    changes = sub.add_parser("changes", help="apply inserts, updates and deletes to a client")
    changes.add_argument("--client", required=True)
    changes.add_argument("--count", type=int, default=100)
    changes.add_argument("--seed", type=int, default=7)
    changes.set_defaults(func=_changes)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StartupError as exc:  # which service failed, and the tail of its log
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
