-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current visit_detail row in the client's database; key: (visit_detail_id)
{{ stg_src('visit_detail') }}
