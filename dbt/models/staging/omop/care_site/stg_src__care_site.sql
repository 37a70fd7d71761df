-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current care_site row in the client's database; key: (care_site_id)
{{ stg_src('care_site') }}
