"""What every part shares: its context, its result, the error guard, and removal steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.operator.spec import PipelineSpec
from clientpipelines.operator.systems import Credentials, SecretMissing, Systems


@dataclass(frozen=True)
class PartContext:
    """Everything a part's ensure/remove reads: the systems, the spec, and what was recorded."""

    systems: Systems
    spec: PipelineSpec
    creds: Credentials | None
    # Why `creds` is None (the Secret is missing, Kubernetes unreachable), for messages.
    creds_problem: str | None = None
    status: Mapping[str, Any] = field(default_factory=dict)
    # The ClientPipeline's name and uid: the owner of what lives in Kubernetes.
    owner: Mapping[str, str] = field(default_factory=dict)

    def need_creds(self, why: str) -> Credentials:
        if self.creds is None:
            raise SecretMissing(f"{why}: {self.creds_problem or 'no credentials'}")
        return self.creds


@dataclass
class PartResult:
    """A part's state after ensure: its condition's status, reason and message, and more."""

    ready: bool
    reason: str
    message: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    # Seconds until the part should be looked at again (it is converging), if any.
    requeue: float | None = None
    # The part hit an error (a service down or refusing): retries back off.
    failed: bool = False


def guarded(run: Callable[[], PartResult]) -> PartResult:
    """Run one part; a service error becomes a not-ready result with a reason."""
    try:
        return run()
    except SecretMissing as exc:
        return PartResult(False, "SecretNotFound", str(exc), requeue=30, failed=True)
    except Conflict as exc:
        # Lost a race (Kafka Connect answers 409 while its group rebalances, which
        # every new connector causes): not a failure, look again soon.
        return PartResult(False, _service(exc) + "Busy", str(exc), requeue=2)
    except ServiceUnavailable as exc:
        return PartResult(False, _service(exc) + "Unavailable", str(exc), failed=True)
    except ServiceError as exc:
        return PartResult(False, _service(exc) + "Error", str(exc), failed=True)


def _service(exc: ServiceError) -> str:
    return "".join(w.capitalize() for w in exc.service.split("-"))


@dataclass
class Removal:
    """The steps of removing parts: what was done, and what could not be done yet.

    Every step is idempotent (removing what is gone does nothing), so a removal that
    stopped halfway completes when it is run again.
    """

    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def step(self, what: str, run: Callable[[], bool | list[str]]) -> bool:
        """Run one step; True when nothing of it is left (removed now or before)."""
        try:
            result = run()
        except (ServiceError, SecretMissing) as exc:
            self.problems.append(f"{what}: {exc}")
            return False
        if result:
            self.done.append(what if result is True else f"{what} {', '.join(result)}")
        return True

    def problem(self, message: str) -> None:
        self.problems.append(message)
