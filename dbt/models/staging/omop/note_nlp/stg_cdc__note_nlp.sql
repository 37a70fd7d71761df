-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one Debezium change event on note_nlp (and the old key of an update that changed it); key: (_partition_id, _partition_offset, change_image)
{{ stg_cdc('note_nlp') }}
