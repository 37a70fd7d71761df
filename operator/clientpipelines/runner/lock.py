"""One run per client at a time: a Nessie branch that says which run holds the client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from clientpipelines.clients.errors import Conflict
from clientpipelines.clients.nessie import NessieClient, Reference


class LockHeld(Exception):
    """Another run holds the client (and its lock has not expired)."""


@contextmanager
def run_lock(
    nessie: NessieClient,
    name: str,
    main: Reference,
    *,
    run_id: str,
    deadline_seconds: float,
    break_lock: bool,
    say: Callable[[str], None],
) -> Iterator[None]:
    """Hold the lock branch `name` for the body; refuse (LockHeld) when another run holds it.

    The lock is a branch (never merged) whose one commit says which run holds it and
    until when: a run killed without cleaning up holds it only until its deadline
    (the Job's activeDeadlineSeconds), after which the next run breaks it.
    """
    try:
        lock = nessie.create_branch(name, main)
    except Conflict:
        _break_stale(nessie, name, break_lock=break_lock, say=say)
        try:
            lock = nessie.create_branch(name, main)
        except Conflict as exc:
            raise LockHeld(f"another run took the lock {name} meanwhile") from exc
    holder = {"run_id": run_id, "expires": time.time() + deadline_seconds}
    nessie.commit_namespace(lock, "run-lock", json.dumps(holder))
    try:
        yield
    finally:
        current = nessie.get_reference(name)
        if current is not None:
            nessie.delete_branch(current)


def _break_stale(
    nessie: NessieClient, name: str, *, break_lock: bool, say: Callable[[str], None]
) -> None:
    held = nessie.get_reference(name)
    if held is None:
        return
    holder: dict[str, Any] = {}
    for commit in nessie.log(name, limit=1):
        try:
            holder = dict(json.loads(commit.message))
        except ValueError:
            holder = {}
    expired = float(holder.get("expires", float("inf"))) < time.time()
    if not (expired or break_lock):
        until = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder["expires"]))
            if "expires" in holder
            else "it finishes"
        )
        raise LockHeld(
            f"another run ({holder.get('run_id', 'starting')}) holds the client "
            f"(Nessie branch {name}) until {until}; "
            "if no run is in progress, rerun with --break-lock"
        )
    nessie.delete_branch(held)
    why = "expired" if expired else "--break-lock"
    say(f"broke the lock of run {holder.get('run_id', '?')} ({why})")
