-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current device_exposure row in the client's database; key: (device_exposure_id)
{{ stg_src('device_exposure') }}
