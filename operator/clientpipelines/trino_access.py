"""Who may do what in Trino: the rules of its file-based system access control.

Trino enforces these rules on every statement (not this code): a client's run
can only reach that client's data, whatever SQL it sends. The principals:

- administrators (the platform team; devstack and the tests): everything;
- the operator: create, list and drop clients' catalogs (`<id>_cdc`,
  `<id>_staging`, `<id>_src`), and nothing in them;
- a client's runner, `system:serviceaccount:<namespace>:<id>-runner` (Trino
  authenticates its ServiceAccount token): its own schemas in its staging
  catalog (the lake on its branch, where every client's schemas also are),
  reading its kafka or postgres catalog, and reading its own schemas in `lake`
  (publishing is a Nessie merge, not a Trino write);
- a client's readers (analysts, granted per client): reading its schemas in `lake`;
- anyone authenticated: their own queries, and `system` metadata that Trino
  itself filters by these rules.

Trino takes, for each kind of check, the first rule whose user and object
patterns match (Java regular expressions, matched in full); no match denies.
Docs: https://trino.io/docs/current/security/file-system-access-control.html

The operator keeps one fragment per client beside the rules file and rewrites the
file from all fragments when one changes (`RulesFile`); Trino reads it again every
`security.refresh-period`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clientpipelines.naming import LAKE_CATALOG, ClientNames

# The audience of the ServiceAccount tokens runners present to Trino (Trino
# refuses a token made for anything else, e.g. the Kubernetes API).
TOKEN_AUDIENCE = "trino"  # noqa: S105 - an audience, not a secret

ALL_PRIVILEGES = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"]


def _exactly(*values: str) -> str:
    """A pattern matching exactly these strings (Trino matches patterns in full)."""
    return "|".join(re.escape(v) for v in sorted(values))


def _client_catalog_pattern() -> str:
    """Any client's catalog name: the suffixes come from the naming contract."""
    probe = ClientNames("x")
    suffixes = [c.removeprefix(probe.sql) for c in probe.client_catalogs]
    return "[a-z][a-z0-9_]*(" + "|".join(re.escape(s) for s in suffixes) + ")"


@dataclass(frozen=True)
class ClientGrant:
    """One client's principals: its runner, and who may read its published data."""

    client_id: str
    runner: str
    readers: tuple[str, ...] = ()


def _client_rules(grant: ClientGrant) -> dict[str, list[dict[str, Any]]]:
    names = ClientNames(grant.client_id)
    # The staging catalog is the whole lake on the client's branch (reset to main
    # each run), so other clients' schemas are in it too: the runner owns only its
    # own schemas there. The kafka and postgres catalogs hold only its own source.
    staging = re.escape(names.staging_catalog)
    sources = _exactly(names.cdc_catalog, names.source_catalog)
    lake = _exactly(*names.lake_schemas)
    runner = _exactly(grant.runner)
    rules: dict[str, list[dict[str, Any]]] = {
        "catalogs": [
            {"user": runner, "catalog": staging, "allow": "all"},
            {"user": runner, "catalog": sources, "allow": "read-only"},
            {"user": runner, "catalog": re.escape(LAKE_CATALOG), "allow": "read-only"},
        ],
        "schemas": [{"user": runner, "catalog": staging, "schema": lake, "owner": True}],
        "tables": [
            {"user": runner, "catalog": staging, "schema": lake, "privileges": ALL_PRIVILEGES},
            {"user": runner, "catalog": sources, "privileges": ["SELECT"]},
            {
                "user": runner,
                "catalog": re.escape(LAKE_CATALOG),
                "schema": lake,
                "privileges": ["SELECT"],
            },
        ],
    }
    if grant.readers:
        readers = _exactly(*grant.readers)
        rules["catalogs"].append(
            {"user": readers, "catalog": re.escape(LAKE_CATALOG), "allow": "read-only"}
        )
        rules["tables"].append(
            {
                "user": readers,
                "catalog": re.escape(LAKE_CATALOG),
                "schema": lake,
                "privileges": ["SELECT"],
            }
        )
    return rules


def build_rules(
    *, admins: Sequence[str], operator: str, clients: Iterable[ClientGrant]
) -> dict[str, Any]:
    """The whole rules document for these principals (deterministic: sorted by client)."""
    admin = _exactly(*admins)
    rules: dict[str, list[dict[str, Any]]] = {
        "catalogs": [
            {"user": admin, "catalog": ".*", "allow": "owner"},
            # CREATE and DROP CATALOG need "owner" on the catalog's name; the
            # operator gets no schema or table rule below, so it sees no data in them.
            {"user": _exactly(operator), "catalog": _client_catalog_pattern(), "allow": "owner"},
        ],
        "schemas": [{"user": admin, "owner": True}],
        "tables": [{"user": admin, "privileges": ALL_PRIVILEGES}],
    }
    for grant in sorted(clients, key=lambda g: g.client_id):
        for kind, entries in _client_rules(grant).items():
            rules[kind].extend(entries)
    # Metadata of the `system` catalog: Trino filters it by the rules above.
    rules["catalogs"].append({"catalog": "system", "allow": "read-only"})
    rules["tables"].append({"catalog": "system", "privileges": ["SELECT"]})
    # Everyone runs queries and sees their own; only administrators see and kill
    # others' (query text can name another client's tables).
    rules["queries"] = [
        {"user": admin, "allow": ["execute", "kill", "view"]},
        {"allow": ["execute"]},
    ]
    rules["system_information"] = [{"user": admin, "allow": ["read", "write"]}]
    return rules


class RulesFile:
    """The rules file Trino reads, kept from one fragment per client.

    Every change is compare-then-write under a lock (several writers may share
    the file: replicas of the operator on one host, devstack); the file is
    replaced atomically, so Trino never reads half of it.
    """

    def __init__(self, path: Path, *, admins: Sequence[str], operator: str) -> None:
        self.path = path
        self.admins = tuple(admins)
        self.operator = operator
        self.fragments = path.with_name(path.name + ".d")
        # The file and the fragments' folder as this object last rendered or checked
        # them (stat): while both are still so, nothing needs a render. Rendering reads
        # every client's fragment: on each drift check of a thousand clients, that
        # was O(clients) under one lock. Anyone else's write (another writer, an
        # edit by hand of the file or of a fragment: a rename, create or unlink in
        # the folder changes its stat) shows in stat(), and the next check renders.
        self._known: tuple[int, ...] | None = None

    def ensure(self, grant: ClientGrant) -> bool:
        """Grant the client's principals; True when the file changed."""
        with self._locked():
            fragment = self.fragments / f"{grant.client_id}.json"
            text = json.dumps(asdict(grant), sort_keys=True)
            same = fragment.exists() and fragment.read_text() == text
            if same and self._unchanged():
                return False
            if not same:
                _replace(fragment, text)
            return self._render()

    def remove(self, client_id: str) -> bool:
        """Withdraw the client's grants; True when the file changed."""
        with self._locked():
            fragment = self.fragments / f"{client_id}.json"
            if not fragment.exists() and self._unchanged():
                return False
            fragment.unlink(missing_ok=True)
            return self._render()

    def refresh(self) -> bool:
        """Write the file from the fragments there are (a first file has no client)."""
        with self._locked():
            return self._render()

    def grants(self) -> list[ClientGrant]:
        found = []
        for fragment in sorted(self.fragments.glob("*.json")):
            raw = json.loads(fragment.read_text())
            found.append(
                ClientGrant(raw["client_id"], raw["runner"], tuple(raw.get("readers") or ()))
            )
        return found

    def _render(self) -> bool:
        # Forgotten first: a render that fails after a fragment changed (a full disk,
        # an unreadable fragment) must not look done to the next check.
        self._known = None
        text = json.dumps(
            build_rules(admins=self.admins, operator=self.operator, clients=self.grants()),
            indent=1,
            sort_keys=True,
        )
        changed = not (self.path.exists() and self.path.read_text() == text)
        if changed:
            _replace(self.path, text)
        self._known = self._stat()
        return changed

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st, folder = self.path.stat(), self.fragments.stat()
        except FileNotFoundError:
            return None
        return (
            *(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns),
            *(folder.st_ino, folder.st_mtime_ns, folder.st_ctime_ns),
        )

    def _unchanged(self) -> bool:
        """Whether the file is as this object last rendered (or found) it."""
        return self._known is not None and self._stat() == self._known

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.fragments.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_private(path: Path, text: str) -> bool:
    """Write `text` to `path` (mode 0640, replaced atomically) unless it holds it; True
    when written. For files only the operator and the services that share its
    group (Trino, Kafka Connect: chart sharedState.groupId) may read (credentials)."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
    return True
