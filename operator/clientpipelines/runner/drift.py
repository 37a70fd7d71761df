"""Schema drift: the client's tables against the OMOP CDM, before anything is built.

A source table that lacks a CDM column would publish NULLs in it for every changed
row (Debezium's events simply omit it), and a full reload would fail mid-build; both
are refused up front, naming table and column. Columns beyond the CDM (clients do
extend tables) are left out of the lake, with a warning: the lake holds the CDM as
defined, which the tools reading it expect.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from clientpipelines import omop
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.runconfig import RunConfig
from clientpipelines.runner.watermark import topic_name


class SchemaDrift(Exception):
    """Source tables lack CDM columns: `missing` maps table -> columns."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        listed = "; ".join(f"{t}: {', '.join(cols)}" for t, cols in missing.items())
        super().__init__(
            f"the source lacks OMOP CDM v{omop.CDM_VERSION} column(s): {listed}. Add them to "
            "the client's tables (NULL where the client has no value); nothing was built "
            "or published"
        )


def compare(table: omop.Table, present: set[str]) -> tuple[list[str], list[str]]:
    """(CDM columns the source lacks, in CDM order; source columns beyond the CDM)."""
    missing = [c for c in table.column_names if c not in present]
    return missing, sorted(present - set(table.column_names))


def cdc_columns(
    trino: TrinoClient, config: RunConfig, table: str, filters: list[str]
) -> set[str] | None:
    """The fields of the batch's newest row image (`after`, by source LSN): the table as
    the source has it now. A column dropped mid-batch is missing there; one added to
    fix a drift is present, though older images in the batch lack it. None when the
    batch holds only deletes."""
    topic = topic_name(config, table)
    images = " union all ".join(
        "select cast(json_extract_scalar(_message, '$.source.lsn') as bigint) as lsn,"  # noqa: S608
        " json_format(json_extract(_message, '$.after')) as image"
        f" from {topic} where ({f}) and _message is not null"
        " and json_extract_scalar(_message, '$.op') <> 'd'"
        for f in filters
    )
    rows = trino.query(f"select max_by(image, lsn) from ({images})")  # noqa: S608
    image = rows[0][0] if rows else None
    fields = json.loads(str(image)) if image else None
    return set(fields) if isinstance(fields, dict) else None


def source_columns(trino: TrinoClient, config: RunConfig, table: str) -> set[str]:
    """The table's columns as the client's Postgres has them (full-reload catalog)."""
    names = config.names
    rows = trino.query(
        f"select column_name from {names.source_catalog}.information_schema.columns"  # noqa: S608
        f" where table_schema = '{config.source_schema}' and table_name = '{table}'"
    )
    return {str(r[0]) for r in rows}


def check(
    trino: TrinoClient,
    config: RunConfig,
    say: Callable[[str], None],
    batch_filters: dict[str, list[str]] | None = None,
) -> None:
    """Raise SchemaDrift when a table lacks CDM columns; warn of columns beyond them.

    CDC reads the batch's messages (`batch_filters` per table; every message when a
    table has none, as a full refresh reads); full reload reads the catalog.
    """
    missing: dict[str, list[str]] = {}
    for name in config.tables:
        if config.cdc:
            found = cdc_columns(trino, config, name, (batch_filters or {}).get(name, ["true"]))
            if found is None:
                continue  # only deletes: no row image to check
            present = found
        else:
            present = source_columns(trino, config, name)
        lacking, extra = compare(omop.table(name), present)
        if lacking:
            missing[name] = lacking
        if extra:
            say(f"{name}: column(s) beyond the OMOP CDM left out of the lake: {', '.join(extra)}")
    if missing:
        raise SchemaDrift(missing)
