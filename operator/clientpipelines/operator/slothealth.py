"""Replication-slot health: how much WAL a CDC pipeline's slot makes the client's Postgres keep.

A slot nobody reads (a paused or failed connector, a connector far behind) keeps
every WAL segment since its position on the client's production server, until its
disk fills. This is the one failure of the pipeline that hurts the client's own
system, so it has a condition of its own (`ReplicationSlotHealthy`), beside the
parts' and outside `Ready`: the parts still match the spec, but someone must act.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clientpipelines.clients.postgres import SlotState
from clientpipelines.operator.conditions import Condition
from clientpipelines.operator.quantity import human_bytes

CONDITION = "ReplicationSlotHealthy"

# A recorded figure is rewritten only when it moved by at least this much (or
# crossed the limit): WAL is server-wide and grows a little with every neighbour's
# write, and a status write per drift check for a few kilobytes would make an
# idle pipeline's object change for ever. The metric carries the exact figure.
MATERIAL_BYTES = 1 << 20
MATERIAL_FRACTION = 0.1


def _material(old: int | None, new: int, limit: int) -> bool:
    if old is None:
        return True
    if (old >= limit) != (new >= limit):
        return True
    return abs(new - old) >= max(MATERIAL_BYTES, old * MATERIAL_FRACTION)


_FIGURES = ("active", "walStatus", "retainedWalBytes", "retainedWal", "retainedWalLimit")


def assess(
    slot: str,
    state: SlotState | None,
    *,
    limit: int,
    recorded: Mapping[str, Any] | None,
) -> tuple[Condition, dict[str, Any]]:
    """The condition and `status.replicationSlot` for what Postgres reports (pure)."""
    if state is None:
        # Debezium creates the slot when its task first starts; until then there is
        # nothing to hold WAL. (A slot dropped under a running connector fails its
        # task, which ConnectorReady reports.)
        return (
            Condition(CONDITION, True, "NoSlot", f"replication slot {slot} does not exist (yet)"),
            # None: a merge patch removes what a slot that existed left behind.
            {"name": slot, "exists": False, **dict.fromkeys(_FIGURES)},
        )
    previous = (recorded or {}).get("retainedWalBytes") if (recorded or {}).get("exists") else None
    old = int(previous) if isinstance(previous, int) else None
    unchanged = (
        old is not None
        and (recorded or {}).get("active") == state.active
        and (recorded or {}).get("walStatus") == state.wal_status
        and not _material(old, state.retained_bytes, limit)
    )
    retained = old if unchanged and old is not None else state.retained_bytes
    status = {
        "name": slot,
        "exists": True,
        "active": state.active,
        "walStatus": state.wal_status,
        "retainedWalBytes": retained,
        "retainedWal": human_bytes(retained),
        "retainedWalLimit": human_bytes(limit),
    }
    held = f"replication slot {slot} holds {human_bytes(retained)} of WAL"
    if state.wal_status == "lost":
        return (
            Condition(
                CONDITION,
                False,
                "SlotLost",
                f"{held}, but Postgres removed WAL it still needed (max_slot_wal_keep_size): "
                "changes are missing from the stream; re-snapshot the client (README: "
                "'A replication slot holds too much WAL')",
            ),
            status,
        )
    if retained >= limit:
        # A paused connector keeps its replication connection: the slot stays active.
        why = (
            "no connector holds it (the connector is stopped or has failed)"
            if not state.active
            else "its connector is not confirming changes (paused, or behind)"
        )
        return (
            Condition(
                CONDITION,
                False,
                "RetainedWalOverLimit",
                f"{held} on the client's database, over the limit of {human_bytes(limit)}: {why}",
            ),
            status,
        )
    return (
        Condition(CONDITION, True, "WithinLimit", f"{held} (limit {human_bytes(limit)})"),
        status,
    )


def not_applicable() -> tuple[Condition, None]:
    """Full-reload pipelines read no WAL and own no slot."""
    return Condition(CONDITION, True, "NotApplicable", "full-reload mode owns no slot"), None
