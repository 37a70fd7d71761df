{{ config(enabled=is_cdc()) }}
-- grain: one Debezium change event on provider; keys: (_partition_id, _partition_offset)
{{ stg_cdc('provider') }}
