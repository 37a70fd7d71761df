-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current condition_era row in the client's database; key: (condition_era_id)
{{ stg_src('condition_era') }}
