{#- The OMOP tables the project models, and how Debezium change events become rows. -#}

{# Columns of each source table with their types. Iceberg has no varchar(n): strings are varchar. #}
{% macro omop_columns(table) -%}
  {%- set columns = {
    'care_site': [
      ('care_site_id', 'bigint'), ('care_site_name', 'varchar'),
      ('place_of_service_concept_id', 'integer'), ('location_id', 'bigint'),
      ('care_site_source_value', 'varchar'), ('place_of_service_source_value', 'varchar'),
    ],
    'provider': [
      ('provider_id', 'bigint'), ('provider_name', 'varchar'), ('npi', 'varchar'),
      ('dea', 'varchar'), ('specialty_concept_id', 'integer'), ('care_site_id', 'bigint'),
      ('year_of_birth', 'integer'), ('gender_concept_id', 'integer'),
      ('provider_source_value', 'varchar'), ('specialty_source_value', 'varchar'),
      ('specialty_source_concept_id', 'integer'), ('gender_source_value', 'varchar'),
      ('gender_source_concept_id', 'integer'),
    ],
  } -%}
  {{ return(columns[table]) }}
{%- endmacro %}

{% macro primary_key(table) -%}
  {{ return({'care_site': 'care_site_id', 'provider': 'provider_id'}[table]) }}
{%- endmacro %}

{% macro column_list(table, prefix='') -%}
  {%- for name, type in omop_columns(table) %}{{ prefix }}{{ name }}{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{% macro is_cdc() -%}
  {{ return(var('ingestion_mode') == 'cdc') }}
{%- endmacro %}

{#
  Staging: one row per Debezium change event, typed. The row image is `after`
  (create, update, snapshot read) or, for a delete, only the key from `before`.
  Debezium's JSON converter writes integers as numbers and strings as strings;
  these tables have no decimal or temporal columns (decimal.handling.mode=string
  and time.precision.mode=connect cover them where a client's tables do).
#}
{% macro stg_cdc(table) -%}
  {%- set pk = primary_key(table) -%}
select
    json_extract_scalar(_message, '$.op') as change_op,
    cast(json_extract_scalar(_message, '$.source.lsn') as bigint) as change_lsn,
    cast(json_extract_scalar(_message, '$.ts_ms') as bigint) as change_ts_ms,
    _partition_id,
    _partition_offset,
    cast(coalesce(
        json_extract_scalar(_message, '$.after.{{ pk }}'),
        json_extract_scalar(_message, '$.before.{{ pk }}')
    ) as bigint) as change_key,
  {%- for name, type in omop_columns(table) %}
    cast(json_extract_scalar(_message, '$.after.{{ name }}') as {{ type }}) as {{ name }}{% if not loop.last %},{% endif %}
  {%- endfor %}
from {{ source('cdc', table) }}
where _message is not null
{%- endmacro %}

{% macro stg_src(table) -%}
select
  {%- for name, type in omop_columns(table) %}
    cast({{ name }} as {{ type }}) as {{ name }}{% if not loop.last %},{% endif %}
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

{# The change log: every change event, appended once, with the batch that loaded it. #}
{% macro changes_model(table) -%}
{{ config(materialized='incremental', incremental_strategy='append', enabled=is_cdc()) }}
{%- for filter in new_offsets_filters() %}
{%- if not loop.first %}
union all
{%- endif %}
select
    s.*,
    cast('{{ var("batch_id", invocation_id) }}' as varchar) as batch_id
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
{{ config(enabled=is_cdc()) }}
select *
from (
    select
        c.*,
        row_number() over (
            partition by change_key
            order by change_lsn desc, _partition_id desc, _partition_offset desc
        ) as change_rank
    from {{ ref(table ~ '_changes') }} as c
    where batch_id = '{{ var("batch_id", invocation_id) }}'
) as ranked
where change_rank = 1
{%- endmacro %}

{#
  A table's current state. CDC: merge this batch's latest changes on the primary
  key; keys whose latest change is a delete are removed first. Full reload: the
  source table as it is now.
#}
{% macro current_state_model(table) -%}
  {%- set pk = primary_key(table) -%}
  {%- if is_cdc() -%}
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=pk,
    pre_hook=[
        "{% if is_incremental() %}delete from {{ this }} where " ~ pk ~ " in (select change_key from "
        ~ "{{ ref('int_" ~ table ~ "__batch_latest') }} where change_op = 'd'){% endif %}"
    ],
) }}
select {{ column_list(table) }}
from {{ ref('int_' ~ table ~ '__batch_latest') }}
where change_op <> 'd'
  {%- else -%}
{{ config(materialized='table') }}
select {{ column_list(table) }}
from {{ ref('stg_src__' ~ table) }}
  {%- endif -%}
{%- endmacro %}

