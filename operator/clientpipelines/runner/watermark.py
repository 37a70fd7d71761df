"""How many Kafka messages a run has to load: those above the published watermark.

The watermark is kept with the data (the highest offset per partition in each
table's change log on `main`), so it moves exactly when a run publishes.
"""

from __future__ import annotations

from collections.abc import Callable

from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.runconfig import RunConfig


class RebuildNeeded(Exception):
    """Reading above the watermark would be wrong: the run rebuilds from every offset.

    Either there is no change log yet (a first run, or a pipeline that was in
    full-reload mode until now: its marts hold rows no change event will delete),
    or the change at the watermark is not in the topic (deleted and created again).
    """


class HeadExpired(Exception):
    """The topic no longer starts where the change log needs it to: its head expired.

    Rebuilding from what is left would drop every row whose last change expired
    (main would shrink and every test still pass), so the run refuses instead.
    """

    def __init__(self, topic: str, detail: str) -> None:
        super().__init__(
            f"{topic}: {detail}: its oldest changes are gone (retention), so neither "
            "continuing nor rebuilding from it would be complete; main is left as it is. "
            "Re-snapshot the client (README: 'When a topic lost its head')"
        )


def topic_name(config: RunConfig, table: str) -> str:
    """The table's topic as the kafka catalog names it."""
    return f'{config.names.cdc_catalog}.default."{config.topic(table)}"'


def check_complete(trino: TrinoClient, config: RunConfig) -> None:
    """Before a full refresh: every partition of every topic still starts at offset 0.

    The connector's topics keep every change (retention.ms=-1), so a partition that
    starts later lost its head to a retention someone set; one the published change
    log has read from but that is empty now lost everything. Reads each topic once,
    which a full refresh does anyway.
    """
    for table in config.tables:
        topic = topic_name(config, table)
        starts = {
            int(p): int(o)
            for p, o in trino.query(
                f"select _partition_id, min(_partition_offset) from {topic} group by 1"  # noqa: S608
            )
        }
        late = [f"partition {p} starts at offset {o}" for p, o in sorted(starts.items()) if o > 0]
        late += [
            f"partition {p} is empty although offsets up to {o} were published"
            for p, o, _, _ in published_marks(trino, config, table) or []
            if p not in starts
        ]
        if late:
            raise HeadExpired(topic, ", ".join(late))


def published_marks(
    trino: TrinoClient, config: RunConfig, table: str, catalog: str | None = None
) -> list[tuple[int, int, int, int]] | None:
    """Per partition: the highest offset in the change log, and its change's LSN and ts_ms.

    Read on staging (reset to main's head by the run), or in `catalog`. None when
    there is no change log (a first run, or a pipeline that was in full-reload
    mode until now).
    """
    names = config.names
    changes = f"{catalog or names.staging_catalog}.{names.lake_schema}.{table}_changes"
    try:
        rows = trino.query(
            # Identifiers come from the validated run contract (naming module).
            "select _partition_id, max(_partition_offset),"  # noqa: S608
            " max_by(change_lsn, _partition_offset),"
            f" max_by(change_ts_ms, _partition_offset) from {changes} group by 1"
        )
    except ServiceUnavailable:
        raise  # the run fails and is retried; a rebuild is never a guess
    except ServiceError as exc:
        if not any(e in str(exc) for e in ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND")):
            raise
        return None
    return [(int(p), int(o), lsn, ts) for p, o, lsn, ts in rows]


def new_offsets_filters(marks: list[tuple[int, int]]) -> list[str]:
    """Filters, one per UNION ALL branch, for the Kafka messages above `marks`.

    The same filters the dbt change-log models read with (macros/cdc.sql): plain
    conjunctions on = and > that Trino's kafka connector turns into partition and
    offset ranges; an OR, <> or NOT IN would make it read the whole topic.
    """
    if not marks:
        return ["true"]
    seen = {p for p, _ in marks}
    filters = [f"_partition_id = {p} and _partition_offset > {o}" for p, o in sorted(marks)]
    filters += [f"_partition_id = {p}" for p in range(max(seen)) if p not in seen]
    filters.append(f"_partition_id > {max(seen)}")
    return filters


def current_filters(trino: TrinoClient, config: RunConfig) -> dict[str, list[str]]:
    """Per table, the filters of the messages above the watermark on staging, every
    table in one statement (new_changes spends two a table, one on Kafka). Equal
    filters mean equal watermarks. A ServiceError when a table has no change log."""
    names = config.names
    rows = trino.query(
        " union all ".join(
            # Identifiers come from the validated run contract (naming module).
            f"select '{table}', _partition_id, max(_partition_offset)"  # noqa: S608
            f" from {names.staging_catalog}.{names.lake_schema}.{table}_changes group by 2"
            for table in config.tables
        )
    )
    marks: dict[str, list[tuple[int, int]]] = {table: [] for table in config.tables}
    for table, partition, offset in rows:
        marks[table].append((int(partition), int(offset)))
    return {table: new_offsets_filters(m) for table, m in marks.items()}


def new_changes(
    trino: TrinoClient,
    config: RunConfig,
    say: Callable[[str], None],
    batch_filters: dict[str, list[str]] | None = None,
    catalog: str | None = None,
) -> int:
    """Messages beyond the watermark over every table; RebuildNeeded when there is none.

    `batch_filters`, when given, receives each table's filters for its new messages;
    `catalog` reads the watermark there instead of on staging.
    Also checks that the watermark belongs to the topic as it is now: a client
    deleted and onboarded again under the same id (or switched to full-reload and
    back) has new topics that start again at offset 0 with a new snapshot, and
    reading above the old watermark would skip them.
    """
    total = 0
    for table in config.tables:
        marks = published_marks(trino, config, table, catalog)
        if marks is None:
            raise RebuildNeeded(f"{table}: no change log to continue from")
        topic = topic_name(config, table)
        filters = new_offsets_filters([(p, o) for p, o, _, _ in marks])
        if batch_filters is not None:
            batch_filters[table] = filters
        # One statement: the new messages' count, and what the topic holds at each
        # watermark (kafka catalog queries cost ~0.3 s each however small).
        counts = " union all ".join(
            f"select count(*) as n from {topic} where {f}"  # noqa: S608
            for f in filters
        )
        at_marks = "".join(
            " union all select 'mark', _partition_id, _partition_offset,"  # noqa: S608
            " cast(json_extract_scalar(_message, '$.source.lsn') as bigint),"
            " cast(json_extract_scalar(_message, '$.ts_ms') as bigint)"
            f" from {topic} where _partition_id = {p} and _partition_offset = {o}"
            for p, o, _, _ in marks
        )
        rows = trino.query(
            "select 'new', sum(n), cast(null as bigint), cast(null as bigint),"  # noqa: S608
            f" cast(null as bigint) from ({counts}){at_marks}"
        )
        live = {(r[1], r[2]): (r[3], r[4]) for r in rows if r[0] == "mark"}
        for p, o, lsn, ts in marks:
            if (p, o) in live:
                if live[(p, o)] != (lsn, ts):
                    say(
                        f"{topic}: the change at the published watermark is not the one "
                        "loaded (the topic was deleted and created again): rebuilding from "
                        "every offset"
                    )
                    raise RebuildNeeded(f"{table}: topic recreated")
                continue
            # Nothing at the watermark. A topic created again (and shorter) still
            # holds offsets below it; one whose head expired holds none up to it, and
            # is still complete only if it starts right after it.
            below, after = trino.query(
                f"select count_if(_partition_offset <= {o}), count_if(_partition_offset = {o + 1})"  # noqa: S608
                f" from {topic} where _partition_id = {p} and _partition_offset <= {o + 1}"
            )[0]
            if below:
                say(
                    f"{topic}: the change at the published watermark is not in the topic "
                    "(it was deleted and created again): rebuilding from every offset"
                )
                raise RebuildNeeded(f"{table}: topic recreated")
            if not after:
                raise HeadExpired(topic, f"partition {p} holds nothing up to the watermark {o}")
            say(
                f"{topic}: partition {p} now starts right after the published watermark"
                f" ({o}): nothing unpublished was lost; continuing"
            )
        total += int(next(r[1] for r in rows if r[0] == "new") or 0)
    return total
