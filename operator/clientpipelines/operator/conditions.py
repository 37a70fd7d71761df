"""Status conditions, the Kubernetes way: one per part, and `Ready` over them all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def ready(parts: Iterable[Condition]) -> Condition:
    """`Ready` is True when every part is; otherwise it names the parts that are not."""
    parts = list(parts)
    failing = [c for c in parts if not c.status]
    if not failing:
        return Condition("Ready", True, "AllPartsReady", "every part matches the spec")
    return Condition(
        "Ready",
        False,
        failing[0].reason if len(failing) == 1 else "PartsNotReady",
        "; ".join(f"{c.type}: {c.message or c.reason}" for c in failing),
    )


def merge(
    old: Sequence[Mapping[str, Any]] | None,
    new: Iterable[Condition],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """New condition dicts; lastTransitionTime moves only when a status flips.

    Conditions of other types (another writer's, e.g. LastRunSucceeded beside the
    parts') are kept as they were.
    """
    previous = {c.get("type"): c for c in old or []}
    merged = []
    for cond in new:
        status = "True" if cond.status else "False"
        before = previous.get(cond.type)
        since = (
            before["lastTransitionTime"]
            if before and before.get("status") == status and before.get("lastTransitionTime")
            else now
        )
        merged.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    given = {c["type"] for c in merged}
    return merged + [dict(c) for c in old or [] if c.get("type") not in given]


def transitions(
    old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The conditions whose status changed (for Events)."""
    previous = {c.get("type"): c.get("status") for c in old or []}
    return [c for c in new if previous.get(c["type"]) != c["status"]]
