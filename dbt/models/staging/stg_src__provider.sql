{{ config(enabled=not is_cdc()) }}
-- grain: one current provider row in the client's database; key: provider_id
{{ stg_src('provider') }}
