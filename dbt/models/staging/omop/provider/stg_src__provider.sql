-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current provider row in the client's database; key: (provider_id)
{{ stg_src('provider') }}
