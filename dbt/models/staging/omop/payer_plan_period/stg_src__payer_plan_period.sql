-- Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit.
-- grain: one current payer_plan_period row in the client's database; key: (payer_plan_period_id)
{{ stg_src('payer_plan_period') }}
