"""Nessie's rules: which principal's patterns match which branches and keys.

Nessie evaluates the patterns with Java's regular expressions; the constructs used
here (classes, groups, back-references, anchors) mean the same in Python's `re`.
tests/integration/test_tenant_isolation.py checks the rules in a real Nessie.
"""

from __future__ import annotations

import re

import pytest

from clientpipelines import nessie_access
from clientpipelines.naming import MAX_CLIENT_ID_LENGTH, ClientNames
from clientpipelines.nessie_access import (
    Principals,
    own_branch_pattern,
    own_key_pattern,
    rules,
    runner_pattern,
)

pytestmark = pytest.mark.unit

IDS = ["acme", "acme-health", "a--b", "x1-y2-z3", "acme-he"]


def runner(client_id: str, namespace: str = "clients") -> str:
    return ClientNames(client_id).runner_principal(namespace)


def may_write_key(client_id: str, path: str) -> bool:
    role = runner(client_id)
    return any(
        re.match(own_key_pattern(n), f"{role}|{path}")
        for n in range(1, nessie_access.MAX_SEGMENTS + 1)
    )


def may_use_branch(client_id: str, ref: str) -> bool:
    return bool(re.match(own_branch_pattern(), f"{runner(client_id)}|{ref}"))


@pytest.mark.parametrize("client_id", IDS)
def test_a_runner_writes_its_own_lake_schemas_and_nothing_else(client_id: str) -> None:
    own = ClientNames(client_id)
    for path in (own.lake_schema, f"{own.lake_schema}.person", f"{own.elementary_schema}.x"):
        assert may_write_key(client_id, path), path
    for other in (i for i in IDS if i != client_id):
        theirs = ClientNames(other)
        for path in (theirs.lake_schema, f"{theirs.lake_schema}.person"):
            assert not may_write_key(client_id, path), (client_id, path)
    for path in (f"{own.lake_schema}x.t", f"{own.lake_schema}_other.t", "main", "", "x.y"):
        assert not may_write_key(client_id, path), path
    assert not may_write_key(client_id, nessie_access.BOOTSTRAP_NAMESPACE)


@pytest.mark.parametrize("client_id", IDS)
def test_a_runner_uses_its_own_branches_only(client_id: str) -> None:
    own = ClientNames(client_id)
    assert may_use_branch(client_id, own.staging_branch)
    assert may_use_branch(client_id, own.run_lock_branch)
    for ref in ("main", f"{client_id}-other", f"x{own.staging_branch}"):
        assert not may_use_branch(client_id, ref), ref
    for other in (i for i in IDS if i != client_id):
        assert not may_use_branch(client_id, ClientNames(other).staging_branch), other


def test_only_runners_match_the_runner_pattern() -> None:
    assert re.match(runner_pattern(), runner("acme-health", "team-a"))
    principals = Principals.in_namespace("data-platform")
    for principal in (principals.admin, principals.trino, principals.operator, "admin"):
        assert not re.match(runner_pattern(), principal), principal
    # Another namespace's account named like a runner is still "a runner" (ids are
    # unique cluster-wide; the operator refuses a taken one): say so, not hide it.
    assert re.match(runner_pattern(), "system:serviceaccount:any:acme-runner")


def test_every_valid_id_has_a_key_rule() -> None:
    widest = "a" + "-a" * ((MAX_CLIENT_ID_LENGTH - 1) // 2)
    assert len(widest) <= MAX_CLIENT_ID_LENGTH
    assert may_write_key(widest, ClientNames(widest).lake_schema)
    dashes = "a" + "-" * (MAX_CLIENT_ID_LENGTH - 2) + "a"
    assert may_write_key(dashes, ClientNames(dashes).lake_schema)


def test_rules_are_cel_with_escaped_literals() -> None:
    principals = Principals.in_namespace("data-platform")
    out = rules(principals)
    assert out["admin"] == f"role == '{principals.admin}'"
    assert len([r for r in out if r.startswith("runner-main-keys-")]) == nessie_access.MAX_SEGMENTS
    # A back-reference reaches Nessie as `\2`: the CEL literal doubles the backslash.
    assert "\\\\2" in out["runner-own-branches"]
    assert "main" not in out["trino-write-staging"]
    props = nessie_access.server_properties(principals, "PEM", "https://issuer")
    assert props["quarkus.oidc.token.audience"] == nessie_access.TOKEN_AUDIENCE
    assert props["nessie.server.authorization.rules.admin"] == out["admin"]


def test_the_deployed_rules_are_generated_from_here() -> None:
    """argocd/values/nessie-authorization.yaml is `devstack gen-nessie-rules`' output."""
    from devstack.cli import NESSIE_RULES_VALUES, platform_namespace  # noqa: PLC0415

    expected = nessie_access.chart_values(platform_namespace())
    assert NESSIE_RULES_VALUES.read_text() == expected, (
        f"{NESSIE_RULES_VALUES.name} is stale: run `uv run devstack gen-nessie-rules`"
    )
