"""Who may do what in Nessie: its authentication settings and CEL authorization rules.

Nessie enforces these rules on every request (not this code). It authenticates
bearer tokens (Quarkus OIDC) signed by the cluster's ServiceAccount key, for the
audience `nessie`, and names the caller by the token's subject. The principals:

- the platform administrator (devstack, the tests, the platform team): everything;
- Trino (its lake and staging catalogs): read every branch; commit only to
  clients' staging branches (`<id>-staging`), never to `main`: Trino's own rules
  (trino_access) decide which client may write which staging catalog;
- the operator: create and delete clients' staging and lock branches, see
  references, and add BOOTSTRAP_NAMESPACE to `main` (it does so only to give an
  empty `main` its first commit);
- a client's runner, `system:serviceaccount:<namespace>:<id>-runner` in one of the
  clients' namespaces: its own branches (`<id>-staging`, `<id>-run-lock`) as
  references (create, reset, delete, see, read the log) and the one key of its
  lock, but no content on them: they start from main, so they hold every client's
  published tables; on `main` only to see it and merge into it, and that merge may
  create, change or delete only the content of its own lake schemas (`<sql id>`
  and `<sql id>_elementary`): Nessie checks each key a merge changes against
  these rules, so a merge carrying another client's tables is refused whole.

No one may delete `main` (Nessie refuses to delete its default branch) or move it
by assignment, except the administrator.

Nessie's CEL has no string functions beyond the standard ones (no replace or
split), so "the runner of client X" and "X's branch" are matched by one regular
expression over `role|ref` with a back-reference; a client id's '-' become '_' in
its SQL name, which a back-reference cannot do, so the key rules come one per
count of '-'-separated segments. Docs:
https://projectnessie.org/nessie-0-99-0/authorization/ and
https://projectnessie.org/nessie-0-99-0/authentication/
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from clientpipelines.naming import (
    ELEMENTARY_SUFFIX,
    MAIN_BRANCH,
    MAX_CLIENT_ID_LENGTH,
    ClientNames,
)

# The audience of the tokens Nessie accepts (a token for Trino or the Kubernetes
# API is refused).
TOKEN_AUDIENCE = "nessie"  # noqa: S105 - an audience, not a secret
# The environment variable Trino's catalogs read their Nessie token from
# (`${ENV:...}`, which Trino resolves itself: no token in CREATE CATALOG's text).
TRINO_TOKEN_ENV = "NESSIE_BEARER_TOKEN"  # noqa: S105 - a variable's name

# The namespace of `main`'s first commit (the operator makes it on an empty main):
# no client's lake schema can be named so (SQL ids start with a letter).
BOOTSTRAP_NAMESPACE = "_clientpipelines"

READ_OPS = ("VIEW_REFERENCE", "READ_ENTRIES", "READ_CONTENT_KEY", "LIST_COMMIT_LOG")
READ_CONTENT_OPS = ("READ_ENTITY_VALUE",)
WRITE_OPS = ("COMMIT_CHANGE_AGAINST_REFERENCE",)
ENTITY_OPS = ("CREATE_ENTITY", "UPDATE_ENTITY", "DELETE_ENTITY")
# What a runner does with its own branches (create, reset, delete, read the head
# and the log, commit its lock): no content read.
RUNNER_REF_OPS = (
    "VIEW_REFERENCE",
    "CREATE_REFERENCE",
    "DELETE_REFERENCE",
    "ASSIGN_REFERENCE_TO_HASH",
    "LIST_COMMIT_LOG",
    "COMMIT_CHANGE_AGAINST_REFERENCE",
)

# Any namespace name (DNS-1123 label), for where clients' runs may be anywhere.
ANY_NAMESPACE = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
# A client id's '-'-separated segments (an id may hold '--', so a segment may be empty).
_SEGMENT = "([a-z0-9]*)"
# An id of at most MAX_CLIENT_ID_LENGTH characters, starting and ending with an
# alphanumeric, has at most this many segments.
MAX_SEGMENTS = MAX_CLIENT_ID_LENGTH - 1
# The key a run's lock branch holds (who holds the lock, until when).
RUN_LOCK_KEY = "run-lock"


def service_account(namespace: str, name: str) -> str:
    """The principal of a ServiceAccount's token (its `sub` claim)."""
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class Principals:
    """The platform's principals in Nessie, and where clients' runners may be.

    `client_namespaces` is a regular expression over namespace names: the rules
    take `<id>-runner` as client `<id>`'s runner only there (a ServiceAccount of
    that name elsewhere is nobody).
    """

    admin: str
    trino: str
    operator: str
    client_namespaces: str = ANY_NAMESPACE

    @classmethod
    def in_namespace(
        cls, namespace: str, client_namespaces: Sequence[str] | None = None
    ) -> Principals:
        """The platform's ServiceAccounts in `namespace` (as argocd/ deploys them),
        clients' runners in `client_namespaces` (default: any namespace)."""
        return cls(
            admin=service_account(namespace, "nessie-admin"),
            trino=service_account(namespace, "trino"),
            operator=service_account(namespace, "clientpipeline-operator"),
            client_namespaces=(
                "|".join(re.escape(n) for n in client_namespaces)
                if client_namespaces
                else ANY_NAMESPACE
            ),
        )

    @property
    def _runners(self) -> str:
        return f"^system:serviceaccount:(?:{self.client_namespaces}):"

    def runner_pattern(self) -> str:
        """Any client's runner."""
        return f"{self._runners}[a-z][-a-z0-9]*{_runner_suffix()}$"

    def own_branch_pattern(self, branches: str = "") -> str:
        """`role|ref` of a client's runner on one of that client's branches (of the
        alternatives `branches`, default its staging and lock branches)."""
        suffixes = branches or "|".join(s.lstrip("-") for s in _branch_suffixes())
        return f"{self._runners}([a-z][-a-z0-9]*){_runner_suffix()}[|]\\1-(?:{suffixes})$"

    def own_key_pattern(self, segments: int) -> str:
        """`role|path` of a client's runner (an id of `segments` parts) on a key of
        its lake schemas: the id's '-' are '_' in the schema's name."""
        ids = "-".join([_SEGMENT] * segments)
        sql = "_".join(f"\\{i + 1}" for i in range(segments))
        return f"{self._runners}{ids}{_runner_suffix()}[|]{sql}(?:{ELEMENTARY_SUFFIX})?(?:[.].*)?$"


def _list(ops: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{op}'" for op in ops) + "]"


def _cel_string(value: str) -> str:
    """`value` as a CEL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _runner_suffix() -> str:
    probe = ClientNames("x")
    return probe.runner_service_account.removeprefix(probe.client_id)


def _branch_suffixes() -> list[str]:
    probe = ClientNames("x")
    return [b.removeprefix(probe.client_id) for b in (probe.staging_branch, probe.run_lock_branch)]


def rules(principals: Principals) -> dict[str, str]:
    """Nessie's authorization rules (rule id -> CEL expression); a request is allowed
    when any rule allows it."""
    p = principals
    main = _cel_string(MAIN_BRANCH)
    staging_suffix, lock_suffix = (_cel_string(s) for s in _branch_suffixes())
    lock_branch = _branch_suffixes()[1].lstrip("-")
    out = {
        "admin": f"role == {_cel_string(p.admin)}",
        "trino-read": (
            f"role == {_cel_string(p.trino)} && op in {_list(READ_OPS + READ_CONTENT_OPS)}"
        ),
        "trino-write-staging": (
            f"role == {_cel_string(p.trino)} && op in {_list(WRITE_OPS + ENTITY_OPS)}"
            f" && ref.endsWith({staging_suffix})"
        ),
        "operator": (
            f"role == {_cel_string(p.operator)} && (op == 'VIEW_REFERENCE'"
            f" || (op in ['CREATE_REFERENCE', 'DELETE_REFERENCE'] && ref != {main}"
            f" && (ref.endsWith({staging_suffix}) || ref.endsWith({lock_suffix}))))"
        ),
        # ... and add BOOTSTRAP_NAMESPACE to main (it does so only while main is empty).
        "operator-first-commit": (
            f"role == {_cel_string(p.operator)} && ref == {main}"
            f" && (op == 'COMMIT_CHANGE_AGAINST_REFERENCE'"
            f" || (op == 'CREATE_ENTITY' && path == {_cel_string(BOOTSTRAP_NAMESPACE)}))"
        ),
        # A runner handles its branches as references, and reads no content on them:
        # they hold every client's published tables (they start from main). Its
        # staging branch's content is written by Trino, under Trino's rules.
        "runner-own-branches": (
            f"op in {_list(RUNNER_REF_OPS)}"
            f" && (role + '|' + ref).matches({_cel_string(p.own_branch_pattern())})"
        ),
        # ... but for the key of its lock.
        "runner-lock-key": (
            f"op in {_list(ENTITY_OPS)} && path == {_cel_string(RUN_LOCK_KEY)}"
            f" && (role + '|' + ref).matches({_cel_string(p.own_branch_pattern(lock_branch))})"
        ),
        "runner-main": (
            f"ref == {main} && op in ['VIEW_REFERENCE', 'COMMIT_CHANGE_AGAINST_REFERENCE']"
            f" && role.matches({_cel_string(p.runner_pattern())})"
        ),
    }
    for segments in range(1, MAX_SEGMENTS + 1):
        out[f"runner-main-keys-{segments:02d}"] = (
            f"ref == {main} && op in {_list(ENTITY_OPS)}"
            f" && (role + '|' + path).matches({_cel_string(p.own_key_pattern(segments))})"
        )
    return out


def server_properties(principals: Principals, public_key_pem: str, issuer: str) -> dict[str, str]:
    """Nessie's settings for authentication (tokens signed by `public_key_pem`, from
    `issuer`, for TOKEN_AUDIENCE) and authorization by `rules`."""
    props = {
        "nessie.server.authentication.enabled": "true",
        # Verified locally with the cluster's ServiceAccount public key (RSA: Quarkus
        # reads only RSA keys here); no OIDC server is asked.
        "quarkus.oidc.public-key": public_key_pem,
        "quarkus.oidc.token.issuer": issuer,
        "quarkus.oidc.token.audience": TOKEN_AUDIENCE,
        "quarkus.oidc.token.principal-claim": "sub",
        "nessie.server.authorization.enabled": "true",
    }
    for rule_id, expression in rules(principals).items():
        props[f"nessie.server.authorization.rules.{rule_id}"] = expression
    return props


# The chart's values file with these rules (argocd/values/), generated from here.
CHART_VALUES_HEADER = """\
# Generated by `uv run devstack gen-nessie-rules` from
# operator/clientpipelines/nessie_access.py (read its docstring): do not edit.
# Nessie's authorization rules for the platform in namespace {namespace}, clients'
# runs in {client_namespaces}; the
# chart writes each into application.properties as it is, so backslashes are
# doubled here (a properties file's escape).
"""


def chart_values(namespace: str, client_namespaces: Sequence[str]) -> str:
    """The Nessie chart's `authorization` values for the platform in `namespace`,
    clients' runs in `client_namespaces`."""
    import yaml  # noqa: PLC0415 - only the generator and its test need it

    escaped = {
        k: v.replace("\\", "\\\\")
        for k, v in rules(Principals.in_namespace(namespace, client_namespaces)).items()
    }
    body = yaml.safe_dump(
        {"authorization": {"enabled": True, "rules": escaped}}, sort_keys=False, width=1000
    )
    header = CHART_VALUES_HEADER.format(
        namespace=namespace, client_namespaces=", ".join(client_namespaces)
    )
    return header + body
