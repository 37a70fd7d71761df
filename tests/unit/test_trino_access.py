"""The access rules Trino enforces: who reaches which catalog, schema and table.

`allowed` reads the rules as Trino's file-based access control does (for each kind
of check the first rule whose patterns all match, in full, decides; none denies),
so these tests pin what the rules say; tests/integration/test_tenant_isolation.py
shows the real Trino enforcing them.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from clientpipelines.trino_access import ClientGrant, RulesFile, build_rules

pytestmark = pytest.mark.unit

A = ClientGrant("acme", "system:serviceaccount:clients:acme-runner", readers=("ana",))
B = ClientGrant("b-health", "system:serviceaccount:other:b-health-runner")
RULES = build_rules(admins=["admin"], operator="clientpipelines-operator", clients=[A, B])


def _first(kind: str, user: str, **objects: str) -> dict[str, Any] | None:
    for rule in RULES[kind]:
        if not re.fullmatch(rule.get("user", ".*"), user):
            continue
        if all(re.fullmatch(rule.get(k, ".*"), v) for k, v in objects.items()):
            return rule
    return None


def catalog(user: str, name: str) -> str:
    rule = _first("catalogs", user, catalog=name)
    return rule["allow"] if rule else "none"


def table(user: str, cat: str, schema: str) -> list[str]:
    rule = _first("tables", user, catalog=cat, schema=schema, table="person")
    return list(rule["privileges"]) if rule else []


def test_a_runner_reaches_its_own_catalogs_and_reads_its_own_lake_schemas() -> None:
    assert catalog(A.runner, "acme_staging") == "all"
    for own in ("acme", "acme_elementary"):
        assert "INSERT" in table(A.runner, "acme_staging", own)
    for source in ("acme_cdc", "acme_src"):
        assert catalog(A.runner, source) == "read-only"
        assert table(A.runner, source, "public") == ["SELECT"]
    assert catalog(A.runner, "lake") == "read-only"
    assert table(A.runner, "lake", "acme") == ["SELECT"]
    assert table(A.runner, "lake", "acme_elementary") == ["SELECT"]


def test_another_clients_schemas_in_the_runners_own_staging_catalog_are_out_of_reach() -> None:
    """Staging is the lake on the client's branch: every client's schemas are there."""
    assert table(A.runner, "acme_staging", "b_health") == []
    assert _first("schemas", A.runner, catalog="acme_staging", schema="b_health") is None


def test_a_runner_reaches_nothing_of_another_client() -> None:
    for other in ("b_health_cdc", "b_health_staging", "b_health_src"):
        assert catalog(A.runner, other) == "none"
        assert table(A.runner, other, "b_health") == []
    assert table(A.runner, "lake", "b_health") == []
    # A name that merely starts like A's is not A's.
    assert catalog(A.runner, "acme_cdc_x") == "none"
    assert table(B.runner, "lake", "acme") == []
    # Another namespace's account of the same name is another principal.
    assert catalog("system:serviceaccount:evil:acme-runner", "acme_cdc") == "none"


def test_the_operator_manages_client_catalogs_and_reads_nothing() -> None:
    op = "clientpipelines-operator"
    assert catalog(op, "acme_cdc") == "owner"  # CREATE/DROP CATALOG
    assert catalog(op, "lake") == "none"
    assert table(op, "acme_cdc", "public") == []
    assert _first("schemas", op, catalog="acme_staging", schema="acme") is None


def test_readers_read_the_clients_lake_schemas_only() -> None:
    assert catalog("ana", "lake") == "read-only"
    assert table("ana", "lake", "acme") == ["SELECT"]
    assert table("ana", "lake", "b_health") == []
    assert catalog("ana", "acme_cdc") == "none"


def test_only_administrators_see_others_queries() -> None:
    assert _first("queries", "admin")["allow"] == ["execute", "kill", "view"]  # type: ignore[index]
    assert _first("queries", A.runner)["allow"] == ["execute"]  # type: ignore[index]


def test_the_rules_file_changes_only_on_a_difference_and_keeps_every_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.json"
    rules = RulesFile(path, admins=["admin"], operator="op")
    assert rules.refresh() is True
    assert rules.refresh() is False
    assert rules.ensure(A) is True
    assert rules.ensure(A) is False
    assert re.escape(A.runner) in {r.get("user") for r in json.loads(path.read_text())["catalogs"]}
    # Writers side by side (the operator's workers): none loses another's grant.
    grants = [ClientGrant(f"c{i}", f"system:serviceaccount:ns:c{i}-runner") for i in range(20)]
    threads = [
        threading.Thread(target=RulesFile(path, admins=["admin"], operator="op").ensure, args=(g,))
        for g in grants
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = json.loads(path.read_text())
    users = {r.get("user") for r in text["catalogs"]}
    assert all(any(g.client_id in (u or "") for u in users) for g in grants)
    assert rules.remove("acme") is True
    assert "acme" not in path.read_text()
    assert rules.remove("acme") is False


def test_a_check_of_an_unchanged_grant_reads_no_other_client_and_edits_are_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.json"
    rules = RulesFile(path, admins=["admin"], operator="op")
    assert rules.ensure(A) is True
    rendered = path.read_text()
    # A drift check with nothing changed renders nothing: no other client's fragment
    # is read (with a thousand clients, every check read them all under one lock).
    monkeypatch.setattr(RulesFile, "grants", lambda _self: pytest.fail("rendered again"))
    assert rules.ensure(A) is False
    assert rules.remove("nobody") is False
    monkeypatch.undo()
    # Edited by hand, or deleted: the next check of any client writes it back.
    path.write_text('{"catalogs": [{"allow": "all"}]}')
    assert rules.ensure(A) is True
    assert path.read_text() == rendered
    path.unlink()
    assert rules.ensure(A) is True
    assert path.read_text() == rendered
    # A client's fragment edited by hand: its own next check writes it back (the file
    # Trino reads never had the edit); another's, deleted, shows in the folder's stat.
    fragment = tmp_path / "rules.json.d" / f"{A.client_id}.json"
    fragment.write_text('{"client_id": "acme", "runner": "someone-else", "readers": []}')
    rules.ensure(A)
    assert json.loads(fragment.read_text())["runner"] == A.runner
    assert path.read_text() == rendered
    beta = ClientGrant("beta", "system:serviceaccount:ns:beta-runner")
    assert rules.ensure(beta) is True
    (tmp_path / "rules.json.d" / "beta.json").unlink()
    assert rules.ensure(A) is True
    assert "beta" not in path.read_text()
    # A render that fails after the fragment changed is done again by the next check.
    grant = ClientGrant(A.client_id, A.runner, readers=("auditor",))
    monkeypatch.setattr(RulesFile, "grants", lambda _self: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        rules.ensure(grant)
    monkeypatch.undo()
    assert rules.ensure(grant) is True
    assert "auditor" in path.read_text()
    # Another writer's grant is kept when this one checks again.
    assert RulesFile(path, admins=["admin"], operator="op").ensure(beta) is True
    assert rules.ensure(grant) is False
    assert "beta" in path.read_text() and A.client_id in path.read_text()
