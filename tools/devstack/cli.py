"""`devstack`: build and run the local control plane (and, later, the platform stack)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from devstack import binaries
from devstack.controlplane import ControlPlane, default_directory
from devstack.procs import StartupError


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


def _build(_: argparse.Namespace) -> int:
    started = time.monotonic()
    for name, path in binaries.ensure_all().items():
        print(f"{name:<24} {path}")
    print(f"binaries ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "build", help="build the control-plane binaries (cached by version)"
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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StartupError as exc:  # which service failed, and the tail of its log
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
