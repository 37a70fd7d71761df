"""What the source must be before a table is published for CDC (pure)."""

from __future__ import annotations

from clientpipelines.operator.preflight import source_problems


def test_tables_with_a_key_or_full_identity_pass() -> None:
    found = {"person": ("d", True), "death": ("f", False), "note": ("i", True)}
    assert source_problems("public", ["person", "death", "note"], found) == []


def test_a_keyless_table_without_full_identity_is_named_with_its_fix() -> None:
    (problem,) = source_problems("public", ["death"], {"death": ("d", False)})
    assert problem.startswith("public.death has no primary key")
    assert "ALTER TABLE public.death REPLICA IDENTITY FULL" in problem


def test_replica_identity_nothing_and_missing_tables_are_named() -> None:
    problems = source_problems("cdm", ["person", "visit"], {"person": ("n", True)})
    assert problems[0].startswith("cdm.person has REPLICA IDENTITY NOTHING")
    assert problems[1] == "cdm.visit does not exist"
