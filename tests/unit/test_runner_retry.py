"""Which dbt failures the runner re-runs: dropped requests only, never data or SQL."""

from __future__ import annotations

from types import SimpleNamespace

from clientpipelines.runner.dbt import _retryable, transient_error

DROPPED = (
    'TrinoQueryError(type=INTERNAL_ERROR, name=GENERIC_INTERNAL_ERROR, message="Failed to '
    "execute POST request against 'http://127.0.0.1:19120/api/v2/trees/c-staging/contents'.\")"
)


def result(name: str, status: str, message: str = "") -> SimpleNamespace:
    """The fields of a dbt RunResult the runner reads."""
    return SimpleNamespace(
        status=status, message=message, node=SimpleNamespace(name=name, unique_id=f"model.{name}")
    )


def test_dropped_requests_are_transient_and_sql_errors_are_not() -> None:
    assert transient_error(DROPPED)
    assert transient_error("java.net.ConnectException: Connection refused")
    assert not transient_error("line 1:8: Column 'x' cannot be resolved")
    assert not transient_error("Got 3 results, configured to fail if != 0")


def test_only_a_build_whose_every_failure_is_transient_is_retried() -> None:
    passed = result("provider", "success")
    dropped = result("care_site", "error", DROPPED)
    skipped = result("provider_care_site", "skipped")
    assert _retryable([passed, dropped, skipped]) == ["care_site"]
    # A failing test is about the data: retrying would only hide it.
    assert _retryable([dropped, result("unique_provider_id", "fail", "Got 1 result")]) == []
    assert _retryable([dropped, result("person", "error", "Column 'x' cannot be resolved")]) == []
    assert _retryable([passed, skipped]) == []
