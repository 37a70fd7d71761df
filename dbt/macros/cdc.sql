{#- Every OMOP CDM table's models, from its definition (macros/omop_cdm.sql, generated),
    and how Debezium change events become rows. -#}

{# Columns of a CDM table as (name, lake type, name in SQL). #}
{% macro cdm_columns(table) -%}
  {%- set out = [] -%}
  {%- for name, kind, type, ident in omop_table(table).columns -%}
    {%- do out.append((name, type, ident)) -%}
  {%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro column_list(table, prefix='') -%}
  {%- for name, type, ident in cdm_columns(table) %}{{ prefix }}{{ ident }}{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{% macro is_cdc() -%}
  {{ return(var('ingestion_mode') == 'cdc') }}
{%- endmacro %}

{# Whether the client onboarded this table: only then are its models built. #}
{% macro onboarded(table) -%}
  {{ return(table in var('tables')) }}
{%- endmacro %}

{#
  The row key as one value, the same expression as omop.Table.key_sql in the
  operator's package: the key column, or a JSON array of the key's values as text.
  `exprs` maps each key column to what holds it.
#}
{% macro row_key(table, exprs) -%}
  {%- set key = omop_table(table).key -%}
  {%- if key | length == 1 -%}
    {{ exprs[key[0]] }}
  {%- else -%}
    json_format(cast(array[{% for k in key %}cast({{ exprs[k] }} as varchar){% if not loop.last %}, {% endif %}{% endfor %}] as json))
  {%- endif -%}
{%- endmacro %}

{#
  A field of a Debezium event's row image, typed. The connector sends decimals as
  strings (decimal.handling.mode=string), dates as days and timestamps as microseconds
  since the epoch (time.precision.mode=adaptive_time_microseconds; the CDM's DDL
  declares TIMESTAMP, i.e. microseconds).
#}
{% macro event_field(image, name, kind, type) -%}
  {%- set raw = "json_extract_scalar(_message, '$." ~ image ~ "." ~ name ~ "')" -%}
  {%- if kind == 'date' -%}
    date_add('day', cast({{ raw }} as integer), date '1970-01-01')
  {%- elif kind == 'datetime' -%}
    {#- In UTC whatever the session's zone; decimal: 9999-12-31 in nanoseconds overflows bigint. -#}
    cast(at_timezone(from_unixtime_nanos(cast({{ raw }} as decimal(38, 0)) * 1000), 'UTC') as timestamp(6))
  {%- elif kind in ('varchar', 'text') -%}
    {{ raw }}
  {%- else -%}
    cast({{ raw }} as {{ type }})
  {%- endif -%}
{%- endmacro %}

{% macro image_fields(table, image) -%}
  {%- set fields = {} -%}
  {%- for name, kind, type, ident in omop_table(table).columns -%}
    {%- do fields.update({name: event_field(image, name, kind, type)}) -%}
  {%- endfor -%}
  {{ return(fields) }}
{%- endmacro %}

{#
  Staging: one row per Debezium change event, typed. The row image is `after`
  (create, update, snapshot read) or, for a delete, only the key from `before`.
  A key change arrives from Debezium as a delete and a create (for a table without
  a primary key too: its messages are keyed by the row key, message.key.columns).
  Should one arrive as a single update with differing keys in `before` and `after`
  (its source has REPLICA IDENTITY FULL), it also yields a delete of the old key.
#}
{% macro stg_cdc(table) -%}
{{ config(enabled=is_cdc() and onboarded(table)) }}
  {%- set after = image_fields(table, 'after') -%}
  {%- set before = image_fields(table, 'before') -%}
  {%- set first_key = omop_table(table).key[0] -%}
with events as (
    select
        json_extract_scalar(_message, '$.op') as change_op,
        cast(json_extract_scalar(_message, '$.source.lsn') as bigint) as change_lsn,
        cast(json_extract_scalar(_message, '$.ts_ms') as bigint) as change_ts_ms,
        _partition_id,
        _partition_offset,
        _message
    from {{ source('cdc', table) }}
    where _message is not null
)
select
    change_op,
    change_lsn,
    change_ts_ms,
    _partition_id,
    _partition_offset,
    'after' as change_image,
    {#- A key column is never null in a row image: no `after` means a delete. -#}
    cast(case
        when json_extract_scalar(_message, '$.after.{{ first_key }}') is not null
        then {{ row_key(table, after) }}
        else {{ row_key(table, before) }}
    end as {{ omop_table(table).key_type }}) as change_key,
  {%- for name, type, ident in cdm_columns(table) %}
    {{ after[name] }} as {{ ident }}{% if not loop.last %},{% endif %}
  {%- endfor %}
from events
{%- if not omop_table(table).primary_key %}
union all
select
    'd' as change_op,
    change_lsn,
    change_ts_ms,
    _partition_id,
    _partition_offset,
    'before' as change_image,
    cast({{ row_key(table, before) }} as {{ omop_table(table).key_type }}) as change_key,
  {%- for name, type, ident in cdm_columns(table) %}
    cast(null as {{ type }}) as {{ ident }}{% if not loop.last %},{% endif %}
  {%- endfor %}
from events
where change_op = 'u'
  and json_extract_scalar(_message, '$.before.{{ first_key }}') is not null
  and {{ row_key(table, before) }} <> {{ row_key(table, after) }}
{%- endif %}
{%- endmacro %}

{% macro stg_src(table) -%}
{{ config(enabled=not is_cdc() and onboarded(table)) }}
select
  {%- for name, type, ident in cdm_columns(table) %}
    cast({{ ident }} as {{ type }}) as {{ ident }}{% if not loop.last %},{% endif %}
  {%- endfor %}
from {{ source('src', table) }}
{%- endmacro %}

{#
  Kafka messages not yet loaded into `changes` (this model): per partition, only
  offsets above the highest one loaded, the watermark kept with the data itself.
  Unseen partitions are read whole. Each filter is a plain conjunction, one per
  UNION ALL branch: Trino's kafka connector turns such constant bounds into
  partition and offset ranges, but an OR across partitions would widen to "every
  offset" and read the whole topic, so a run would cost the topic's size instead
  of what changed.
#}
{% macro new_offsets_filters() -%}
  {%- if not is_incremental() -%}
    {{ return(["true"]) }}
  {%- endif -%}
  {%- set rows = run_query(
      "select _partition_id, max(_partition_offset) from " ~ this ~ " group by 1"
  ) if execute else none -%}
  {%- if rows is none or rows | length == 0 -%}
    {{ return(["true"]) }}
  {%- endif -%}
  {%- set filters = [] -%}
  {%- set seen = rows | map(attribute=0) | list -%}
  {%- for r in rows -%}
    {%- do filters.append("_partition_id = " ~ r[0] ~ " and _partition_offset > " ~ r[1]) -%}
  {%- endfor -%}
  {#- Partitions with nothing loaded yet: the gaps below the highest seen id, and
      every id above it (Kafka only ever adds partitions). Written as = and >
      because the connector prunes partitions on those, but not on <> or not in. -#}
  {%- for p in range(seen | max) if p not in seen -%}
    {%- do filters.append("_partition_id = " ~ p) -%}
  {%- endfor -%}
  {%- do filters.append("_partition_id > " ~ seen | max) -%}
  {{ return(filters) }}
{%- endmacro %}

{#
  The batch this run loads, from the environment variable that the var
  batch_id_env names (the runner sets it), read only at run time: dbt parses the
  whole project again whenever --vars change, but a parse that never calls env_var
  keeps its partial-parse state from batch to batch. Outside a run (dbt build by
  hand): dbt's invocation id.
#}
{% macro batch_id() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set name = var('batch_id_env', none) -%}
  {{- return(env_var(name, invocation_id) if name else invocation_id) -}}
{%- endmacro %}

{#
  Test configs cannot call project macros at parse time, so a `where` that must see
  run-time values is written inside {% raw %}...{% endraw %} and rendered here,
  when the test runs (dbt's own macro only inserts the string).
#}
{% macro default__get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if where -%}
    {%- if '{{' in where -%}{%- set where = render(where) -%}{%- endif -%}
    {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
  {%- else -%}
    {%- do return(relation) -%}
  {%- endif -%}
{%- endmacro %}

{# The change log: every change event, appended once, with the batch that loaded it. #}
{% macro changes_model(table) -%}
{#- A change log written before a column existed (change_image) gains it. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    enabled=is_cdc() and onboarded(table),
) }}
{%- for filter in new_offsets_filters() %}
{%- if not loop.first %}
union all
{%- endif %}
select
    s.*,
    cast('{{ batch_id() }}' as varchar) as batch_id
from {{ ref('stg_cdc__' ~ table) }} as s
where {{ filter }}
{%- endfor %}
{%- endmacro %}

{#
  The latest change per key among this batch: by LSN, then Kafka position. A
  primary-key update arrives as a delete of the old key and a create of the new
  one, so it needs no special case.
#}
{% macro batch_latest_model(table) -%}
{{ config(enabled=is_cdc() and onboarded(table)) }}
  {%- set batch = batch_id() -%}
  {%- set toasted = [] -%}
  {%- for name, kind, type, ident in omop_table(table).columns if kind == 'text' -%}
    {%- do toasted.append(ident) -%}
  {%- endfor %}
select *
from (
    select
        c.*,
        row_number() over (
            partition by change_key
            order by change_lsn desc, _partition_id desc, _partition_offset desc
        ) as change_rank
  {%- if not toasted %}
    from {{ ref(table ~ '_changes') }} as c
    where batch_id = '{{ batch }}'
  {%- else %}
    {#-
      Long text is TOASTed by Postgres: an update that leaves it unchanged reaches
      Debezium without it, and the event carries a placeholder instead. Such a value
      is the key's last real one, from the change log's history of the batch's keys
      (the snapshot or insert always carried it).
    #}
    from (
        select
            change_op, change_lsn, change_ts_ms, _partition_id, _partition_offset,
            change_image, change_key, batch_id,
          {%- for name, type, ident in cdm_columns(table) %}
          {%- if ident in toasted %}
            case when {{ ident }} = '{{ var("debezium_unavailable_value") }}' then element_at(
                last_value(
                    case when {{ ident }} is distinct from '{{ var("debezium_unavailable_value") }}'
                    then array[{{ ident }}] end
                ) ignore nulls over (
                    partition by change_key
                    order by change_lsn, _partition_id, _partition_offset
                    rows between unbounded preceding and 1 preceding
                ), 1) else {{ ident }} end as {{ ident }}{% if not loop.last %},{% endif %}
          {%- else %}
            {{ ident }}{% if not loop.last %},{% endif %}
          {%- endif %}
          {%- endfor %}
        from {{ ref(table ~ '_changes') }}
        where change_key in (
            select change_key from {{ ref(table ~ '_changes') }} where batch_id = '{{ batch }}'
        )
    ) as c
    where batch_id = '{{ batch }}'
  {%- endif %}
) as ranked
where change_rank = 1
{%- endmacro %}

{#
  A table's current state. CDC: this batch's latest change per key, merged
  (materialization keyed_merge). Full reload: the source table as it is now.
#}
{% macro current_state_model(table) -%}
  {%- if is_cdc() -%}
    {%- set on_target = {} -%}
    {%- set idents = [] -%}
    {%- for name, type, ident in cdm_columns(table) -%}
      {%- do on_target.update({name: 'target.' ~ ident}) -%}
      {%- do idents.append(ident) -%}
    {%- endfor -%}
{{ config(
    enabled=onboarded(table),
    materialized='keyed_merge',
    merge_columns=idents,
    merge_key=row_key(table, on_target),
) }}
select change_op, change_key, {{ column_list(table) }}
from {{ ref('int_' ~ table ~ '__batch_latest') }}
  {%- else -%}
{{ config(enabled=onboarded(table), materialized='table') }}
select {{ column_list(table) }}
from {{ ref('stg_src__' ~ table) }}
  {%- endif -%}
{%- endmacro %}

{#
  Whether a keyed_merge model builds only what its batch touched: its table exists
  and this is no full refresh (is_incremental() answers only for dbt's own
  incremental materialization).
#}
{% macro merging() -%}
  {{ return(execute and load_cached_relation(this) is not none and not should_full_refresh()) }}
{%- endmacro %}

{#
  A table kept by key, in one statement and so one Iceberg commit on Nessie. The
  model selects, per key it touched, `change_op` ('d': the key is gone),
  `change_key` and the table's columns (config merge_columns); `merge_key` is the
  table's key as an expression over the alias `target`, equal to change_key. One
  MERGE removes the keys marked 'd', updates the other keys the table has and
  inserts the new ones. dbt-trino's incremental merge would stage the batch in a
  temporary table (Trino cannot create views on a Nessie catalog) and delete in a
  pre-hook first: four commits and two metadata reads a table. The first build
  and --full-refresh: CREATE OR REPLACE of the rows not marked 'd'.
#}
{% materialization keyed_merge, adapter='trino' %}
  {%- set columns = config.require('merge_columns') -%}
  {%- set target = this.incorporate(type='table') -%}
  {{ run_hooks(pre_hooks) }}
  {%- if not merging() -%}
    {%- call statement('main') -%}
create or replace table {{ target }} as
select {{ columns | join(', ') }}
from (
{{ compiled_code }}
) as batch
where change_op <> 'd'
    {%- endcall -%}
  {%- else -%}
    {%- call statement('main') -%}
merge into {{ target }} as target
using (
{{ compiled_code }}
) as batch
on {{ config.require('merge_key') }} = batch.change_key
when matched and batch.change_op = 'd' then delete
when matched then update set
  {%- for ident in columns %}
    {{ ident }} = batch.{{ ident }}{% if not loop.last %},{% endif %}
  {%- endfor %}
when not matched and batch.change_op <> 'd' then
    insert ({{ columns | join(', ') }})
    values ({% for ident in columns %}batch.{{ ident }}{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endcall -%}
  {%- endif -%}
  {{ run_hooks(post_hooks) }}
  {{ return({'relations': [target]}) }}
{% endmaterialization %}
