{{ config(enabled=not is_cdc()) }}
-- grain: one current care_site row in the client's database; key: care_site_id
{{ stg_src('care_site') }}
