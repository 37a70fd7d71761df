-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current episode_event row in the client's database; key: (episode_id, event_id, episode_event_field_concept_id)
{{ stg_src('episode_event') }}
