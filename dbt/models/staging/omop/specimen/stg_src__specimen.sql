-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current specimen row in the client's database; key: (specimen_id)
{{ stg_src('specimen') }}
