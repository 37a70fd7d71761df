-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current condition_occurrence row in the client's database; key: (condition_occurrence_id)
{{ stg_src('condition_occurrence') }}
