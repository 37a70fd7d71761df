"""How the operator paces retries: errors back off, converging parts are polled."""

from __future__ import annotations

import pytest

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.operator.parts import PARTS, Part, PartResult, Removal, guarded, remove_all
from clientpipelines.operator.reconcile import CONVERGING_POLLS, retry_delay
from clientpipelines.operator.systems import SecretMissing


def test_errors_back_off_exponentially_up_to_five_minutes() -> None:
    delays = [retry_delay(15, retry, backoff=True) for retry in range(8)]
    assert delays[:4] == [15, 30, 60, 120]
    assert delays[-1] == 300
    assert delays == sorted(delays)


def test_converging_parts_are_polled_at_their_pace_then_back_off() -> None:
    assert {retry_delay(2, r, backoff=False) for r in range(CONVERGING_POLLS + 1)} == {2}
    assert retry_delay(2, CONVERGING_POLLS + 1, backoff=False) == 4
    assert retry_delay(2, CONVERGING_POLLS + 20, backoff=False) == 300


def _raising(exc: Exception) -> PartResult:
    raise exc


@pytest.mark.parametrize(
    ("exc", "reason", "failed", "requeue"),
    [
        (Conflict("kafka-connect", "rebalance in progress", 409), "KafkaConnectBusy", False, 2),
        (
            ServiceUnavailable("kafka-connect", "connection refused"),
            "KafkaConnectUnavailable",
            True,
            None,
        ),
        (ServiceError("trino", "access denied", 403), "TrinoError", True, None),
        (SecretMissing("no Secret acme-db"), "SecretNotFound", True, 30),
    ],
)
def test_guarded_turns_errors_into_a_condition_and_a_pace(
    exc: Exception, reason: str, failed: bool, requeue: float | None
) -> None:
    result = guarded(lambda: _raising(exc))
    assert result.ready is False
    assert result.reason == reason
    assert (result.failed, result.requeue) == (failed, requeue)


def test_removal_goes_on_past_a_failed_step_and_reports_it() -> None:
    removal = Removal()
    assert not removal.step(
        "dropped catalog a", lambda: _raising(ServiceUnavailable("trino", "down"))
    )
    assert removal.step("dropped catalog b", lambda: True)
    assert removal.step("deleted branch c", lambda: False)  # already gone: nothing to do
    assert removal.step("deleted topics", lambda: ["t1", "t2"])
    assert removal.done == ["dropped catalog b", "deleted topics t1, t2"]
    assert removal.problems == ["dropped catalog a: trino: down"]


def test_removal_stops_runs_first_and_deletes_topics_last() -> None:
    order = [p.name for p in sorted(PARTS, key=lambda p: p.removal_rank)]
    assert order == ["cronjob", "branch", "catalogs", "connector"]
    seen: list[str] = []

    def part(name: str, *, fails: bool = False, gate: bool = False) -> Part:
        def remove(_: object, removal: Removal) -> None:
            seen.append(name)
            if fails:
                removal.problem(f"{name} not gone yet")

        return Part(name, name, lambda _: PartResult(True, "x"), remove, gate=gate)

    # A gate that is not gone holds the rest back; any other problem does not.
    removal = remove_all(None, [part("runs", fails=True, gate=True), part("rest")])  # type: ignore[arg-type]
    assert (seen, removal.problems) == (["runs"], ["runs not gone yet"])
    seen.clear()
    remove_all(None, [part("a", fails=True), part("b")])  # type: ignore[arg-type]
    assert seen == ["a", "b"]


def test_each_part_reports_its_own_condition_once() -> None:
    types = [p.condition for p in PARTS]
    assert len(set(types)) == len(types) == len({p.name for p in PARTS})
    # The CronJob lives in Kubernetes (garbage-collected); the others are kept by Retain.
    assert [p.name for p in PARTS if not p.outside_kubernetes] == ["cronjob"]
