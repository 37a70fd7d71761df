-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current drug_era row in the client's database; key: (drug_era_id)
{{ stg_src('drug_era') }}
