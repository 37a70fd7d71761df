-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one Debezium change event on visit_occurrence (and the old key of an update that changed it); key: (_partition_id, _partition_offset, change_image)
{{ stg_cdc('visit_occurrence') }}
