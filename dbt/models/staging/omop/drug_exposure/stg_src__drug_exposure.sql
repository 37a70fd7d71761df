-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current drug_exposure row in the client's database; key: (drug_exposure_id)
{{ stg_src('drug_exposure') }}
