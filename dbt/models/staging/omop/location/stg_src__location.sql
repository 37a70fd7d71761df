-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current location row in the client's database; key: (location_id)
{{ stg_src('location') }}
