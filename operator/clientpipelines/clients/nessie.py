"""Nessie's REST API v2: branches, their heads, assign and merge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from clientpipelines.clients._http import RestClient

# The hash of a branch without commits (Nessie's "no ancestor").
NO_ANCESTOR = "2e1cfa82b035c26cbbbdae632cea070514eb8b773f616aaeaf668e2f0be8f10d"


@dataclass(frozen=True)
class Reference:
    name: str
    hash: str
    type: str = "BRANCH"

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "name": self.name, "hash": self.hash}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Reference:
        return cls(name=body["name"], hash=body["hash"], type=body.get("type", "BRANCH"))


@dataclass(frozen=True)
class Commit:
    hash: str
    message: str
    # Who made it: Nessie records the authenticated principal.
    committer: str = ""


class NessieClient(RestClient):
    """`base_url` is the API v2 root, e.g. http://nessie:19120/api/v2."""

    service = "nessie"

    def get_reference(self, name: str) -> Reference | None:
        resp = self.request("GET", f"/trees/{quote(name, safe='')}", allow=(404,))
        if resp.status_code == 404:
            return None
        return Reference.from_json(resp.json()["reference"])

    def create_branch(self, name: str, source: Reference) -> Reference:
        """Create branch `name` at `source`'s hash."""
        resp = self.request(
            "POST", "/trees", params={"name": name, "type": "BRANCH"}, json=source.to_json()
        )
        return Reference.from_json(resp.json()["reference"])

    def delete_branch(self, branch: Reference) -> None:
        self.request("DELETE", f"/trees/{quote(branch.name, safe='')}@{branch.hash}")

    def assign_branch(self, branch: Reference, to: Reference) -> Reference:
        """Point `branch` (at its expected hash) at `to`; Conflict if it moved meanwhile."""
        resp = self.request(
            "PUT", f"/trees/{quote(branch.name, safe='')}@{branch.hash}", json=to.to_json()
        )
        return Reference.from_json(resp.json()["reference"])

    def merge(self, source: Reference, into: Reference, message: str | None = None) -> Reference:
        """Merge `source` into branch `into` (expected at its hash); returns `into`'s new head.

        A branch without any commit (a fresh `main`) shares no ancestor with anything,
        and Nessie refuses to merge into it; there the merge is a fast-forward, done
        as an assign at the expected hash. (Known by its hash, not by reading its log,
        which a client's runner may not read.)
        """
        if into.hash == NO_ANCESTOR:
            return self.assign_branch(into, source)
        body: dict[str, Any] = {"fromRefName": source.name, "fromHash": source.hash}
        if message:
            body["message"] = message
        resp = self.request(
            "POST", f"/trees/{quote(into.name, safe='')}@{into.hash}/history/merge", json=body
        )
        result = resp.json()
        return Reference(name=into.name, hash=result["resultantTargetHash"])

    def commit_namespace(self, branch: Reference, namespace: str, message: str) -> Reference:
        """Commit one namespace entry to `branch` (expected at its hash) with `message`.

        Nessie refuses a commit without operations; a namespace is the lightest one.
        """
        body = {
            "commitMeta": {"message": message},
            "operations": [
                {
                    "type": "PUT",
                    "key": {"elements": [namespace]},
                    "content": {"type": "NAMESPACE", "elements": [namespace]},
                }
            ],
        }
        resp = self.request(
            "POST", f"/trees/{quote(branch.name, safe='')}@{branch.hash}/history/commit", json=body
        )
        return Reference(name=branch.name, hash=resp.json()["targetBranch"]["hash"])

    def log(self, ref: str, *, limit: int = 20) -> list[Commit]:
        resp = self.request(
            "GET", f"/trees/{quote(ref, safe='')}/history", params={"max-records": str(limit)}
        )
        commits = []
        for entry in resp.json().get("logEntries", [])[:limit]:
            meta = entry["commitMeta"]
            commits.append(
                Commit(
                    hash=meta["hash"],
                    message=meta.get("message", ""),
                    committer=meta.get("committer") or "",
                )
            )
        return commits
