{%- set columns = [
    'provider_id', 'provider_name', 'npi', 'specialty_source_value', 'year_of_birth',
    'gender_source_value', 'care_site_id', 'care_site_name', 'place_of_service_source_value',
] -%}
{{ config(
    enabled="provider" in var("tables") and "care_site" in var("tables"),
    materialized='keyed_merge' if is_cdc() else 'table',
    merge_columns=columns,
    merge_key='target.provider_id',
) }}
-- grain: one provider, with its care site (none when the provider has no care site)
{%- if is_cdc() %}
-- CDC: an incremental run rebuilds only the providers its batch touched: those it
-- changed, and those whose care site it changed (a provider it deleted is removed).
-- depends_on: {{ ref('int_provider__batch_latest') }}
-- depends_on: {{ ref('int_care_site__batch_latest') }}
{%- endif %}
{%- set touched_only = is_cdc() and merging() %}
with
{%- if touched_only %}
touched as (
    select change_key as provider_id from {{ ref('int_provider__batch_latest') }}
    union
    select provider_id from {{ ref('provider') }}
    where care_site_id in (select change_key from {{ ref('int_care_site__batch_latest') }})
),
{%- endif %}

rows as (
    select
        p.provider_id,
        p.provider_name,
        p.npi,
        p.specialty_source_value,
        p.year_of_birth,
        p.gender_source_value,
        c.care_site_id,
        c.care_site_name,
        c.place_of_service_source_value
    from {{ ref('provider') }} as p
    left join {{ ref('care_site') }} as c on p.care_site_id = c.care_site_id
{%- if touched_only %}
    where p.provider_id in (select provider_id from touched)
{%- endif %}
)

{%- if touched_only %}

select
    case when rows.provider_id is null then 'd' else 'u' end as change_op,
    touched.provider_id as change_key,
    rows.*
from touched
left join rows on touched.provider_id = rows.provider_id
{%- elif is_cdc() %}

select 'u' as change_op, provider_id as change_key, rows.*
from rows
{%- else %}

select * from rows
{%- endif %}
