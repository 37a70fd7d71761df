"""How the operator paces retries: errors back off, converging parts are polled."""

from __future__ import annotations

import pytest

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.operator.parts import PartResult, SecretMissing, guarded
from clientpipelines.operator.reconcile import CONVERGING_POLLS, retry_delay


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
    result = guarded("ConnectorReady", lambda: _raising(exc))
    assert result.condition.type == "ConnectorReady"
    assert result.condition.status is False
    assert result.condition.reason == reason
    assert (result.failed, result.requeue) == (failed, requeue)
