-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
{{ changes_model('device_exposure') }}
