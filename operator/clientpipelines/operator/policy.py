"""What the platform refuses before any part is touched: a pipeline that would reach
beyond its own client (a taken client id, an image the platform did not choose, a
Secret of another client or with unsafe values).

A refused pipeline gets `Ready=False` with the reason (and the part's condition
where one part is concerned); no system is written to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clientpipelines.operator import desired
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import PipelineSpec


@dataclass(frozen=True)
class Claim:
    """A ClientPipeline that claims a client id (its name), wherever its namespace."""

    namespace: str
    name: str
    uid: str
    created: str  # metadata.creationTimestamp


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str
    # The part condition it is also reported under, if it concerns one part.
    condition: str | None = None


def holder(claims: Iterable[Claim]) -> Claim | None:
    """Who holds a client id: the oldest claim (the namespace breaks a tie)."""
    return min(claims, key=lambda c: (c.created, c.namespace), default=None)


def refusal(
    spec: PipelineSpec, settings: Settings, *, uid: str, claims: Iterable[Claim]
) -> Refusal | None:
    """Why this pipeline must not touch anything, or None (pure)."""
    first = holder(claims)
    if first is not None and first.uid != uid:
        # Two namespaces' pipelines of one name would share every derived name:
        # connector, slot, topics, catalogs, branch. The first one keeps them.
        return Refusal(
            "ClientIdTaken",
            f"client id {spec.client_id} is taken by ClientPipeline {first.namespace}/"
            f"{first.name}; choose another name (every derived name would be shared)",
        )
    if settings.runner_image is None and spec.image is None:
        return Refusal(
            "NoRunnerImage",
            "spec.transform.image is not set and the operator has no RUNNER_IMAGE",
            "ScheduleReady",
        )
    if desired.runner_image(spec, settings) is None:
        allowed = ", ".join(settings.allowed_images) or "none besides the default"
        return Refusal(
            "ImageNotAllowed",
            f"spec.transform.image {spec.image!r} is not allowed (operator setting "
            f"ALLOWED_RUNNER_IMAGES: {allowed}); leave it out for the platform's runner image",
            "ScheduleReady",
        )
    return None
