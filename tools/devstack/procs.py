"""Local processes for the dev environment: start, health-wait, stop with no orphans.

Every service runs in its own process group, its PID recorded in a file, so that a
later `down` (from another shell, after a crash) finds it and stops the whole group.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A service did not become healthy in time; the message ends with its log tail."""


# Fixed ports of services that may start later (the platform stack's): a port
# picked at random now must not be one of them, or that service cannot start.
_RESERVED: set[int] = set()


def reserve_ports(ports: Iterable[int]) -> None:
    _RESERVED.update(ports)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now and not reserved."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED:
            return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGTERM when the parent dies,
    # so a killed test run leaves no control plane behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new process group, output appended to `log`, PID in `pidfile`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def read_pid(pidfile: Path) -> int | None:
    """The PID in `pidfile` if that process is still alive."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(pidfile: Path, *, timeout: float = 20.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Stop the process group recorded in `pidfile`: `sig`, then SIGKILL. True if it ran."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    _signal_group(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while pid_alive(pid):
            _reap(pid)
            time.sleep(0.05)
    # Whatever the leader left in its group goes too.
    _signal_group(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def group_rss_bytes(pid: int) -> int:
    """Resident memory of every process in `pid`'s process group (the service and its children)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (3rd field of /proc/PID/stat); pgrp is the 5th, rss the 24th.
        if int(fields[2]) == pid:
            total += int(fields[21]) * page
    return total


def tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(
    name: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    log: Path,
    pidfile: Path | None = None,
    interval: float = 0.25,
) -> float:
    """Poll `check` until it is true; raise StartupError naming `name` with its log tail.

    Returns the seconds waited. Fails early when the process has already exited.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: S110 - any failure of the probe means "not yet"
            pass
        if pidfile is not None and read_pid(pidfile) is None:
            raise StartupError(f"{name} exited during startup; last lines of {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise StartupError(
                f"{name} was not healthy within {timeout:.0f}s; last lines of {log}:\n{tail(log)}"
            )
        time.sleep(interval)


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 120, interval: float = 1
) -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def http_status(url: str, timeout: float = 3) -> int:
    """The HTTP status of a GET on a loopback health endpoint (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def http_ok(url: str, timeout: float = 3) -> bool:
    return http_status(url, timeout) == 200


def http_json(url: str, timeout: float = 3) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())
