"""The client's Nessie staging branch, where runs build before they publish to main."""

from __future__ import annotations

from functools import partial

from clientpipelines.clients.errors import Conflict, ServiceError
from clientpipelines.clients.nessie import NO_ANCESTOR, NessieClient, Reference
from clientpipelines.naming import MAIN_BRANCH
from clientpipelines.nessie_access import BOOTSTRAP_NAMESPACE
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal


def ensure(ctx: PartContext) -> PartResult:
    """The staging branch exists (created from main). The operator never moves main."""
    nessie, name = ctx.systems.nessie, ctx.spec.names.staging_branch
    writes = []
    # Main is checked on every pass, not only when the branch is made: an empty
    # main (a new platform, or one reset) takes no run's merge.
    main = nessie.get_reference(MAIN_BRANCH)
    if main is None:
        raise ServiceError("nessie", f"branch {MAIN_BRANCH} does not exist")
    if main.hash == NO_ANCESTOR:
        main = first_commit(nessie, main)
        writes.append(f"made {MAIN_BRANCH}'s first commit ({BOOTSTRAP_NAMESPACE})")
    if nessie.get_reference(name) is None:
        nessie.create_branch(name, main)
        repaired = bool(ctx.status.get("branch"))
        writes.append(f"{'repaired' if repaired else 'created'} branch {name} from {MAIN_BRANCH}")
    return PartResult(
        True, "BranchExists", f"{name} exists", status={"branch": {"name": name}}, writes=writes
    )


def first_commit(nessie: NessieClient, main: Reference) -> Reference:
    """Give an empty `main` its first commit, so runs can merge into it.

    Nessie merges only between branches with a common ancestor, and a client's
    runner may not move `main` by assignment (nessie_access): it publishes by merge
    alone. The commit adds an empty namespace no client's schema can be named.
    """
    try:
        return nessie.commit_namespace(main, BOOTSTRAP_NAMESPACE, "clientpipelines: first commit")
    except Conflict:  # another reconcile made it first
        current = nessie.get_reference(MAIN_BRANCH)
        if current is None:
            raise
        return current


def remove(ctx: PartContext, removal: Removal) -> None:
    """Delete the staging branch and a run lock left behind (runs are stopped by now)."""
    nessie, names = ctx.systems.nessie, ctx.spec.names

    def delete(branch: str) -> bool:
        ref = nessie.get_reference(branch)
        if ref is None:
            return False
        nessie.delete_branch(ref)
        return True

    for branch in (names.staging_branch, names.run_lock_branch):
        removal.step(f"deleted branch {branch}", partial(delete, branch))


def kept(ctx: PartContext) -> str:
    return f"branch {ctx.spec.names.staging_branch}"
