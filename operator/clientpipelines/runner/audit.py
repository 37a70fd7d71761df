"""Row conservation: what a batch did to each table must add up before main moves.

For every table the batch touched: rows on staging after the build = rows on main
before + keys the batch inserted - keys it deleted, counted by key (not guessed
from event counts). dbt's tests check each row; this checks that no row appeared or
went missing on the way (a merge that lost a key, a delete applied twice).
"""

from __future__ import annotations

from dataclasses import dataclass

from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import LAKE_CATALOG
from clientpipelines.runconfig import RunConfig


@dataclass(frozen=True)
class TableCount:
    table: str
    before: int  # on main (0 for a full refresh: the table is replaced)
    inserted: int
    deleted: int
    after: int  # on staging
    changed: int = 0  # keys the batch changed (inserted, updated or deleted)

    @property
    def expected(self) -> int:
        return self.before + self.inserted - self.deleted

    @property
    def conserved(self) -> bool:
        return self.after == self.expected

    def describe(self) -> str:
        verdict = "conserved" if self.conserved else "NOT conserved"
        return (
            f"{self.table}: {self.before} on main + {self.inserted} inserted - "
            f"{self.deleted} deleted = {self.expected}; staging has {self.after} ({verdict})"
        )


def count_table(
    trino: TrinoClient, config: RunConfig, table: str, key: str, *, full_refresh: bool
) -> TableCount:
    """One statement per table over main (lake catalog), staging and the batch's latest changes."""
    names = config.names
    staging = f"{names.staging_catalog}.{names.lake_schema}"
    batch = f"{staging}.int_{table}__batch_latest"
    # Identifiers come from the validated run contract and dbt's manifest.
    if full_refresh:
        # Everything was one batch and replaced the table: main does not count.
        main_keys = f"select {key} as k from {staging}.{table} where false"  # noqa: S608
    else:
        main_keys = f"select {key} as k from {LAKE_CATALOG}.{names.lake_schema}.{table}"  # noqa: S608
    row = trino.query(
        f"with main_keys as ({main_keys}),"  # noqa: S608
        f" batch as (select change_key, change_op from {batch})"
        " select (select count(*) from main_keys),"
        " (select count(*) from batch b where b.change_op <> 'd'"
        "   and not exists (select 1 from main_keys m where m.k = b.change_key)),"
        " (select count(*) from batch b where b.change_op = 'd'"
        "   and exists (select 1 from main_keys m where m.k = b.change_key)),"
        f" (select count(*) from {staging}.{table}),"
        " (select count(*) from batch)"
    )[0]
    return TableCount(table, int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))
