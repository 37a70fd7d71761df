"""One run per client at a time: a Nessie branch that says which run holds the client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from clientpipelines.clients.errors import Conflict
from clientpipelines.clients.nessie import NessieClient, Reference
from clientpipelines.nessie_access import RUN_LOCK_KEY

HOLDER_GRACE_SECONDS = 10.0
# How often a run waiting for the lock (--wait-for-lock) looks again.
LOCK_POLL_SECONDS = 2.0


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
    wait_seconds: float = 0.0,
    own_prefix: str | None = None,
) -> Iterator[None]:
    """Hold the lock branch `name` for the body; refuse (LockHeld) when another run holds it
    (after waiting up to `wait_seconds` for it to be released).

    The lock is a branch (never merged) whose one commit says which run holds it and
    until when: a run killed without cleaning up holds it only until its deadline
    (the Job's activeDeadlineSeconds), after which the next run breaks it. A lock
    whose holder's run id starts with `own_prefix` was left by this same runner
    before it restarted (a continuous runner's batches are "<its Pod>-<n>"): broken.
    """
    waited_until = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            lock = _take(nessie, name, main, break_lock=break_lock, own_prefix=own_prefix, say=say)
            break
        except LockHeld as exc:
            if time.monotonic() >= waited_until:
                raise
            if not said:
                say(f"{exc}: waiting up to {wait_seconds:g}s for it")
                said = True
            time.sleep(LOCK_POLL_SECONDS)
    holder = {"run_id": run_id, "expires": time.time() + deadline_seconds}
    nessie.commit_namespace(lock, RUN_LOCK_KEY, json.dumps(holder))
    try:
        yield
    finally:
        # Only our own lock: after a --break-lock another run may hold it now.
        current, holder = _holder(nessie, name)
        if current is not None and holder.get("run_id") == run_id:
            nessie.delete_branch(current)


def _take(
    nessie: NessieClient,
    name: str,
    main: Reference,
    *,
    break_lock: bool,
    own_prefix: str | None,
    say: Callable[[str], None],
) -> Reference:
    try:
        return nessie.create_branch(name, main)
    except Conflict:
        _break_stale(nessie, name, break_lock=break_lock, own_prefix=own_prefix, say=say)
        try:
            return nessie.create_branch(name, main)
        except Conflict as exc:
            raise LockHeld(f"another run took the lock {name} meanwhile") from exc


def _holder(nessie: NessieClient, name: str) -> tuple[Reference | None, dict[str, Any]]:
    """The lock branch and what its commit says of its holder (empty: nothing yet)."""
    held = nessie.get_reference(name)
    if held is None:
        return None, {}
    for commit in nessie.log(name, limit=1):
        try:
            holder = json.loads(commit.message)
        except ValueError:
            return held, {}  # main's commit: the branch was created, never committed to
        if isinstance(holder, dict) and "run_id" in holder:
            return held, holder
    return held, {}


def _break_stale(
    nessie: NessieClient,
    name: str,
    *,
    break_lock: bool,
    say: Callable[[str], None],
    own_prefix: str | None = None,
) -> None:
    held, holder = _holder(nessie, name)
    # A run says who holds the lock a moment after creating it; a lock that says
    # nothing for HOLDER_GRACE_SECONDS was left by a run that died in between.
    deadline = time.monotonic() + HOLDER_GRACE_SECONDS
    while held is not None and not holder and time.monotonic() < deadline:
        time.sleep(0.5)
        held, holder = _holder(nessie, name)
    if held is None:
        return
    abandoned = not holder
    expired = abandoned or float(holder.get("expires", float("inf"))) < time.time()
    mine = bool(own_prefix) and str(holder.get("run_id", "")).startswith(str(own_prefix))
    if not (expired or break_lock or mine):
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
    why = "abandoned before it said who held it" if abandoned else "expired"
    why = why if expired else "left by this runner before it restarted" if mine else "--break-lock"
    say(f"broke the lock of run {holder.get('run_id', '?')} ({why})")
