"""What the client's source must be before its tables are published for CDC.

Adding a table to a publication has a consequence on the client's own database:
Postgres then refuses every UPDATE and DELETE on a published table that has no
replica identity ("cannot update table ... because it does not have a replica
identity and publishes updates"). A table without a primary key needs REPLICA
IDENTITY FULL (the CDM's death, fact_relationship, episode_event, cdm_source have
none); REPLICA IDENTITY NOTHING never works. The connector is not created (or not
given the new table list) until every table passes: the client's writes must
never be broken by onboarding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def source_problems(
    schema: str, tables: Sequence[str], identities: Mapping[str, tuple[str, bool]]
) -> list[str]:
    """One line per table that cannot be published as it is, with the fix (pure)."""
    problems = []
    for table in tables:
        qualified = f"{schema}.{table}"
        if table not in identities:
            problems.append(f"{qualified} does not exist")
            continue
        identity, has_key = identities[table]
        if identity == "n" or (identity == "d" and not has_key):
            what = "REPLICA IDENTITY NOTHING" if identity == "n" else "no primary key"
            problems.append(
                f"{qualified} has {what}: once published, Postgres would refuse its "
                f"UPDATEs and DELETEs; run ALTER TABLE {qualified} REPLICA IDENTITY FULL"
            )
    return problems
