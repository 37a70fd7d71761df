-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current visit_occurrence row in the client's database; key: (visit_occurrence_id)
{{ stg_src('visit_occurrence') }}
