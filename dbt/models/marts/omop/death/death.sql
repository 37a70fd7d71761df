-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
{{ current_state_model('death') }}
