{{ config(enabled=is_cdc()) }}
-- grain: one Debezium change event on care_site; keys: (_partition_id, _partition_offset)
{{ stg_cdc('care_site') }}
