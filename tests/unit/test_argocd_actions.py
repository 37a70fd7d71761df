"""ArgoCD resource actions for ClientPipeline: the Lua run on each case of action_test.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_health import ACTIONS, act, discover

TESTS = yaml.safe_load((ACTIONS / "action_test.yaml").read_text())
NOW = "2026-11-27T12:00:00Z"  # the clock action_test.yaml's expected outputs assume


def _load(path: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ACTIONS / path).read_text()))


@pytest.mark.parametrize(
    "case",
    TESTS["discoveryTests"],
    ids=[Path(c["inputPath"]).stem for c in TESTS["discoveryTests"]],
)
def test_discovery_offers_each_action_only_when_it_makes_sense(case: dict[str, Any]) -> None:
    found = discover(_load(case["inputPath"]))
    assert {name: bool(a.get("disabled")) for name, a in found.items()} == {
        r["name"]: r["disabled"] for r in case["result"]
    }


@pytest.mark.parametrize(
    "case", TESTS["actionTests"], ids=[c["action"] for c in TESTS["actionTests"]]
)
def test_each_action_changes_the_object_as_expected(case: dict[str, Any]) -> None:
    assert act(case["action"], _load(case["inputPath"]), now=NOW) == _load(
        case["expectedOutputPath"]
    )


def test_every_action_has_a_test_and_a_discovery_entry() -> None:
    folders = {p.name for p in ACTIONS.iterdir() if (p / "action.lua").exists()}
    assert folders == {c["action"] for c in TESTS["actionTests"]}
    assert folders == set(discover(_load("testdata/running.yaml")))
