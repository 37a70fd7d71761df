"""Admission rules the CRD and the operator apply before anything is touched."""

from __future__ import annotations

import re

import pytest
import yaml

from clientpipelines.manifests import CRD_PATH
from clientpipelines.operator.systems import unsafe_credential

SCHEMA = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
RULE = SCHEMA["properties"]["spec"]["properties"]["transform"]["properties"]["schedule"][
    "x-kubernetes-validations"
][0]["rule"]
# The CEL rule is self.matches(r'<RE2>'); the same expression in Python's re.
CRON = re.compile(RULE.removeprefix("self.matches(r'").removesuffix("')"))


@pytest.mark.parametrize(
    "schedule",
    [
        "*/15 * * * *",
        "0 3 1 1 *",
        "@hourly",
        "0 0 * * MON-FRI",
        "5,35 */2 1-15 jan,jul 0",
        "59 23 31 12 7",
        "0 9-17/2 * * 1-5",
    ],
)
def test_valid_schedules_pass(schedule: str) -> None:
    assert CRON.match(schedule)


@pytest.mark.parametrize(
    "schedule",
    [
        "61 * * * *",
        "99 99 99 99 99",
        "* * * *",
        "* * * * * *",
        "every five minutes",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
    ],
)
def test_out_of_range_or_malformed_schedules_are_refused(schedule: str) -> None:
    assert not CRON.match(schedule)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("${ENV:LAKE_S3_SECRET_KEY}", "contains '${'"),
        ("${file:/etc/passwd:x}", "contains '${'"),
        ("reader\nx", "contains a control character"),
        ("a\x00b", "contains a control character"),
    ],
)
def test_credentials_that_a_service_would_expand_are_refused(value: str, why: str) -> None:
    assert unsafe_credential(value) == why


def test_ordinary_credentials_pass() -> None:
    assert unsafe_credential("Ørsted-p@ss w0rd$!{}") is None
