"""The parts of a client's pipeline, each owning its whole life: ensure, and remove.

`PARTS` is the one table the reconcile loop (ensure, in order) and deletion (remove,
in reverse order) iterate over; a part's condition type and metric label are
written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clientpipelines.operator.parts import branch, catalogs, connector, cronjob
from clientpipelines.operator.parts.base import (
    PartContext,
    PartResult,
    Removal,
    guarded,
)


@dataclass(frozen=True)
class Part:
    name: str  # the metric label
    condition: str  # the status condition it reports
    ensure: Callable[[PartContext], PartResult]
    remove: Callable[[PartContext, Removal], None]
    # What a Retain deletion leaves behind outside Kubernetes (None: nothing).
    kept: Callable[[PartContext], str] | None = None
    # Removal order (lowest first): runs stop before anything they use goes, and
    # the kafka catalog goes before the connector's topics (a query on it could
    # create them again).
    removal_rank: int = 0
    # The parts after it wait until it is gone (a run still writing must not see
    # its branch disappear, nor create it again).
    gate: bool = False

    @property
    def outside_kubernetes(self) -> bool:
        return self.kept is not None


# Reconcile order: catalogs before the connector (a full-reload switch drops the
# kafka catalog before the connector's topics go), the CronJob last (runs need the rest).
PARTS: tuple[Part, ...] = (
    Part("catalogs", "CatalogsReady", catalogs.ensure, catalogs.remove, catalogs.kept, 2),
    Part("connector", "ConnectorReady", connector.ensure, connector.remove, connector.kept, 3),
    Part("branch", "BranchesReady", branch.ensure, branch.remove, branch.kept, 1),
    Part("cronjob", "ScheduleReady", cronjob.ensure, cronjob.remove, removal_rank=0, gate=True),
)


def remove_all(ctx: PartContext, parts: Iterable[Part] = PARTS) -> Removal:
    """Remove `parts` in removal order: runs stop first, topics go last.

    A gate part that is not gone yet (its runs still stopping) holds the rest back:
    the caller retries the whole removal, which redoes nothing already done.
    """
    removal = Removal()
    for part in sorted(parts, key=lambda p: p.removal_rank):
        before = len(removal.problems)
        part.remove(ctx, removal)
        if part.gate and len(removal.problems) > before:
            break
    return removal


__all__ = ["PARTS", "Part", "PartContext", "PartResult", "Removal", "guarded", "remove_all"]
