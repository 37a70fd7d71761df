{#
  Elementary's defaults, with its on-run-end uploads (dbt's artifacts, run and test
  results, the invocation; 3-4 s a build here) made only where they are read.

  The runner names an environment variable in var('elementary_uploads_env') and sets
  it to "failures" for a build that makes no report (continuous mode's batches
  between two reports): that build uploads only if a node did not succeed or pass,
  so Elementary's tables and its next report still hold every failure and warning;
  a green batch leaves no record there (the runner's log has it). Unset: Elementary's
  own defaults. Read only when executing, so dbt's partial parsing never sees it
  (as macros/cdc.sql: batch_id()).

  Elementary reads its settings through this dispatched macro (get_config_var), and
  dbt_project.yml's dispatch puts this project first in its search order.
#}
{%- macro trino__get_default_config() -%}
  {%- set config = elementary.trino__get_default_config() -%}
  {%- if execute and results is defined and not elementary_uploads_wanted(results) -%}
    {%- do config.update({
      "disable_dbt_artifacts_autoupload": true,
      "disable_run_results": true,
      "disable_tests_results": true,
      "disable_dbt_invocation_autoupload": true,
    }) -%}
  {%- endif -%}
  {{- return(config) -}}
{%- endmacro -%}

{# Whether this build's results go to Elementary (`results`: on-run-end's). #}
{%- macro elementary_uploads_wanted(results) -%}
  {%- set name = var('elementary_uploads_env', none) -%}
  {%- if not name or env_var(name, 'always') != 'failures' -%}{{ return(true) }}{%- endif -%}
  {%- for result in results -%}
    {%- if result.status not in ['success', 'pass'] -%}{{ return(true) }}{%- endif -%}
  {%- endfor -%}
  {{- return(false) -}}
{%- endmacro -%}
