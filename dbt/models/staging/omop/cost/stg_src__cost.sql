-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current cost row in the client's database; key: (cost_id)
{{ stg_src('cost') }}
