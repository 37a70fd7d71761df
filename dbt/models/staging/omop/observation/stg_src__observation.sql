-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current observation row in the client's database; key: (observation_id)
{{ stg_src('observation') }}
