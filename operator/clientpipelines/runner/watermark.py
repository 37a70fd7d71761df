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


def new_changes(trino: TrinoClient, config: RunConfig, say: Callable[[str], None]) -> int:
    """Messages beyond the watermark over every table; RebuildNeeded when there is none.

    Also checks that the watermark belongs to the topic as it is now: a client
    deleted and onboarded again under the same id (or switched to full-reload and
    back) has new topics that start again at offset 0 with a new snapshot, and
    reading above the old watermark would skip them.
    """
    names = config.names
    total = 0
    for table in config.tables:
        changes = f"{names.staging_catalog}.{names.lake_schema}.{table}_changes"
        try:
            marks = trino.query(
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
            raise RebuildNeeded(f"{table}: no change log to continue from") from exc
        topic = f'{names.cdc_catalog}.default."{config.topic(table)}"'
        # One statement: the new messages' count, and what the topic holds at each
        # watermark (kafka catalog queries cost ~0.3 s each however small).
        counts = " union all ".join(
            f"select count(*) as n from {topic} where {f}"  # noqa: S608
            for f in new_offsets_filters([(p, o) for p, o, _, _ in marks])
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
        if any(live.get((p, o)) != (lsn, ts) for p, o, lsn, ts in marks):
            say(
                f"{topic}: the change at the published watermark is not in the topic "
                "(it was deleted and created again): rebuilding from every offset"
            )
            raise RebuildNeeded(f"{table}: topic recreated")
        total += int(next(r[1] for r in rows if r[0] == "new") or 0)
    return total
