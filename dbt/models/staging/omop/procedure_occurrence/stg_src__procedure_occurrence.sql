-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current procedure_occurrence row in the client's database; key: (procedure_occurrence_id)
{{ stg_src('procedure_occurrence') }}
