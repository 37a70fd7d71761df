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
from clientpipelines.nessie_access import Principals, rules

pytestmark = pytest.mark.unit

IDS = ["acme", "acme-health", "a--b", "x1-y2-z3", "acme-he"]
ANYWHERE = Principals.in_namespace("data-platform")


def runner(client_id: str, namespace: str = "clients") -> str:
    return ClientNames(client_id).runner_principal(namespace)


def may_write_key(client_id: str, path: str) -> bool:
    role = runner(client_id)
    return any(
        re.match(ANYWHERE.own_key_pattern(n), f"{role}|{path}")
        for n in range(1, nessie_access.MAX_SEGMENTS + 1)
    )


def may_use_branch(client_id: str, ref: str) -> bool:
    return bool(re.match(ANYWHERE.own_branch_pattern(), f"{runner(client_id)}|{ref}"))


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


def test_only_runners_in_the_clients_namespaces_match() -> None:
    assert re.match(ANYWHERE.runner_pattern(), runner("acme-health", "team-a"))
    for principal in (ANYWHERE.admin, ANYWHERE.trino, ANYWHERE.operator, "admin"):
        assert not re.match(ANYWHERE.runner_pattern(), principal), principal
    # Deployed, a runner is one only in the clients' namespaces: an account named
    # acme-runner elsewhere is nobody.
    deployed = Principals.in_namespace("data-platform", ["clients", "clients-eu"])
    assert re.match(deployed.runner_pattern(), runner("acme", "clients-eu"))
    for namespace in ("team-a", "clientsx", "x-clients"):
        principal = runner("acme", namespace)
        assert not re.match(deployed.runner_pattern(), principal), principal
        assert not re.match(deployed.own_branch_pattern(), f"{principal}|acme-staging")
        assert not re.match(deployed.own_key_pattern(1), f"{principal}|acme.person")


@pytest.mark.parametrize("segments", range(1, nessie_access.MAX_SEGMENTS + 1))
def test_every_count_of_segments_has_its_key_rule(segments: int) -> None:
    # "a--..--b": `segments` parts (the inner ones empty); and "a-a-..-a" where it fits.
    client_ids = ["a" + "-" * (segments - 1) + "b"]
    if 2 * segments - 1 <= MAX_CLIENT_ID_LENGTH:
        client_ids.append("-".join(["a"] * segments))
    for client_id in client_ids:
        own = ClientNames(client_id)
        assert may_write_key(client_id, f"{own.lake_schema}.t"), client_id
        # Its neighbours (one segment more or less) are other clients.
        neighbours = [client_id[0] + "-" + client_id[1:]] if len(client_id) > 1 else []
        if segments > 1:
            neighbours.append(client_id.replace("-", "", 1))
        for other in neighbours:
            if len(other) <= MAX_CLIENT_ID_LENGTH:
                schema = ClientNames(other).lake_schema
                assert not may_write_key(client_id, f"{schema}.t"), other


def test_rules_are_cel_with_escaped_literals() -> None:
    principals = Principals.in_namespace("data-platform")
    out = rules(principals)
    assert out["admin"] == f"role == '{principals.admin}'"
    assert len([r for r in out if r.startswith("runner-main-keys-")]) == nessie_access.MAX_SEGMENTS
    # A back-reference reaches Nessie as `\1`: the CEL literal doubles the backslash.
    assert "\\\\1" in out["runner-own-branches"]
    assert "main" not in out["trino-write-staging"]
    props = nessie_access.server_properties(principals, "PEM", "https://issuer")
    assert props["quarkus.oidc.token.audience"] == nessie_access.TOKEN_AUDIENCE
    assert props["nessie.server.authorization.rules.admin"] == out["admin"]


def test_the_deployed_rules_are_generated_from_here() -> None:
    """argocd/values/nessie-authorization.yaml is `devstack gen-nessie-rules`' output."""
    from devstack.cli import NESSIE_RULES_VALUES, nessie_rules_values  # noqa: PLC0415

    assert NESSIE_RULES_VALUES.read_text() == nessie_rules_values(), (
        f"{NESSIE_RULES_VALUES.name} is stale: run `uv run devstack gen-nessie-rules`"
    )
