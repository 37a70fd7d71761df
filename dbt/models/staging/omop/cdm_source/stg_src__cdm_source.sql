-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current cdm_source row in the client's database; key: (cdm_source_name)
{{ stg_src('cdm_source') }}
