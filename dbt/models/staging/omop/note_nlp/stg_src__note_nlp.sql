-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current note_nlp row in the client's database; key: (note_nlp_id)
{{ stg_src('note_nlp') }}
