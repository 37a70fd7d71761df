"""Generate the OMOP CDM knowledge the product carries from the CDM's own definition.

    uv run devstack gen-omop [--cdm DIR]

Reads OHDSI's field-level specification (OMOP_CDMv5.4_Field_Level.csv and the table
list) and writes, all marked as generated:

- operator/clientpipelines/omop_cdm54.json: the CDM tables as data, each with the
  first sentence of OHDSI's description (the onboarding app shows it);
- dbt/macros/omop_cdm.sql: each table's columns, lake types and row key, for the
  macros in dbt/macros/cdc.sql;
- dbt/models/*/omop/: per table the five one-line models (CDC staging, full-reload
  staging, change log, the batch's latest change, the current-state mart) and their
  YAML with the tests the definition implies.

tests/unit/test_omop.py fails when a generated file differs from what this writes.
"""

from __future__ import annotations

import csv
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from clientpipelines import omop
from devstack.paths import REPO_ROOT

DEFAULT_CDM_DIR = REPO_ROOT.parent / "shared" / "omop-cdm-5.4"
JSON_PATH = omop.DEFINITION
DBT_DIR = REPO_ROOT / "dbt"
HEADER = "Generated from the OMOP CDM v5.4 definition by `uv run devstack gen-omop`: do not edit."

# Expectations beyond what the definition implies, per table and column: they warn.
# A source value is any text by OMOP's conventions; these say what a client's values
# usually are, so an unusual one shows up in the run's warnings.
EXPECTATIONS: dict[str, dict[str, list[str]]] = {
    "provider": {"gender_source_value": ["M", "F", "U"]},
}


def read_definition(cdm_dir: Path) -> dict[str, Any]:
    """The CDM-schema tables of the field-level CSV as the JSON data this module writes."""
    with (cdm_dir / "OMOP_CDMv5.4_Table_Level.csv").open(newline="", encoding="utf-8") as f:
        described = {
            r["cdmTableName"].lower(): _first_sentence(r["tableDescription"])
            for r in csv.DictReader(f)
            if r["schema"] == "CDM"
        }
    tables: dict[str, dict[str, Any]] = {
        n: {"description": d, "columns": [], "primary_key": []} for n, d in described.items()
    }
    with (cdm_dir / "OMOP_CDMv5.4_Field_Level.csv").open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            name = r["cdmTableName"].lower()
            if name not in tables:
                continue
            column: dict[str, Any] = {
                # OHDSI quotes a reserved name (note_nlp's "offset"); the column is offset.
                "name": r["cdmFieldName"].lower().strip('"'),
                "type": r["cdmDatatype"].lower(),
                "required": r["isRequired"] == "Yes",
            }
            if r["isForeignKey"] == "Yes" and r["fkTableName"] not in ("", "NA"):
                column["references"] = r["fkTableName"].lower()
            tables[name]["columns"].append(column)
            if r["isPrimaryKey"] == "Yes":
                tables[name]["primary_key"].append(column["name"])
    return {"cdm_version": omop.CDM_VERSION, "generated": HEADER, "tables": tables}


def _first_sentence(text: str) -> str:
    """OHDSI's description up to its first full stop (one a capital follows: not "i.e."),
    without markup."""
    text = re.sub(r"<[^>]+>", " ", text).strip()
    if text in ("", "NA"):
        return ""
    match = re.match(r"(.+?\.)(\s+[A-Z]|$)", text, re.S)
    return " ".join((match.group(1) if match else text).split())


def render_json(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=1, ensure_ascii=False) + "\n"


def render_macro(tables: dict[str, omop.Table]) -> str:
    lines = [
        f"{{#- {HEADER} -#}}",
        "{#- Per table: its row key (omop.Table.key in the operator's package), the key's",
        "    type, whether the key is a primary key (else omop.ROW_KEYS chose it), and its",
        "    columns as (name, CDM kind or 'text' for long text Postgres may TOAST, lake type,",
        "    name in SQL: quoted if reserved). -#}",
        "{% macro omop_table(name) -%}",
        "  {%- set tables = {",
    ]
    for t in tables.values():
        cols = ", ".join(
            f"('{c.name}', '{'text' if c.toastable else c.kind}', '{c.trino_type}', '{c.sql_name}')"
            for c in t.columns
        )
        key = ", ".join(f"'{k}'" for k in t.key)
        lines.append(
            f"    '{t.name}': {{'key': [{key}], 'key_type': '{t.key_type}', "
            f"'primary_key': {bool(t.primary_key)}, 'columns': [{cols}]}},"
        )
    lines += [
        "  } -%}",
        "  {%- if name not in tables -%}",
        "    {{ exceptions.raise_compiler_error(name ~ ' is not an OMOP CDM v5.4 table') }}",
        "  {%- endif -%}",
        "  {{ return(tables[name]) }}",
        "{%- endmacro %}",
        "",
    ]
    return "\n".join(lines)


def _touched(t: omop.Table) -> str:
    """A test's `where`: in CDC mode only the keys this run's batch touched."""
    batch = f"' ~ target.database ~ '.' ~ target.schema ~ '.int_{t.name}__batch_latest"
    return f"{t.key_sql()} in (select change_key from {batch})"


def _where(*conditions: str) -> str:
    joined = " or ".join(f"({c})" for c in conditions) if len(conditions) > 1 else conditions[0]
    return f"{{{{ '{joined}' if var('ingestion_mode') == 'cdc' else 'true' }}}}"


def _model_files(t: omop.Table) -> dict[str, str]:
    name = t.name
    key = ", ".join(t.key)
    return {
        f"staging/omop/{name}/stg_cdc__{name}.sql": (
            f"-- {HEADER}\n-- grain: one Debezium change event on {name} (and the old key of an"
            f" update that changed it); key: (_partition_id, _partition_offset, change_image)\n"
            f"{{{{ stg_cdc('{name}') }}}}\n"
        ),
        f"staging/omop/{name}/stg_src__{name}.sql": (
            f"-- {HEADER}\n-- grain: one current {name} row in the client's database;"
            f" key: ({key})\n{{{{ stg_src('{name}') }}}}\n"
        ),
        f"intermediate/omop/{name}/{name}_changes.sql": (
            f"-- {HEADER}\n{{{{ changes_model('{name}') }}}}\n"
        ),
        f"intermediate/omop/{name}/int_{name}__batch_latest.sql": (
            f"-- {HEADER}\n{{{{ batch_latest_model('{name}') }}}}\n"
        ),
        f"marts/omop/{name}/{name}.sql": f"-- {HEADER}\n{{{{ current_state_model('{name}') }}}}\n",
    }


def _mart_yaml(t: omop.Table) -> dict[str, Any]:
    touched = _touched(t)
    columns: list[dict[str, Any]] = []
    model: dict[str, Any] = {
        "name": t.name,
        "description": (
            f"Current state of the client's {t.name} table (OMOP CDM v{omop.CDM_VERSION}). "
            f"Grain: one {t.name} row. Key: {', '.join(t.key)}."
        ),
        "data_tests": [
            {
                "elementary.volume_anomalies": {
                    "config": {
                        "enabled": "{{ var('elementary_installed', false) }}",
                        "severity": "warn",
                        # Continuous mode runs monitors only with a batch that makes
                        # a report (runner/dbt.py: MONITOR_TAG), not every batch.
                        "tags": ["monitor"],
                    }
                }
            }
        ],
        "columns": columns,
    }
    if len(t.key) > 1:
        model["data_tests"].append(
            {
                "unique_combination_of_columns": {
                    "arguments": {"columns": list(t.key)},
                    "config": {"where": _where(touched)},
                }
            }
        )
    # Required fields, one query per table (macros/tests.sql): the key and the other
    # required fields block; a required concept id that is missing only warns (it is
    # mapped later; 0 means "no matching concept" by the CDM's convention).
    blocking = [c.name for c in t.columns if c.required and (c.name in t.key or not c.is_concept)]
    concepts = [c.name for c in t.columns if c.required and c.name not in blocking]
    for names, severity in ((blocking, "error"), (concepts, "warn")):
        if names:
            model["data_tests"].append(
                {
                    "not_null_columns": {
                        "arguments": {"columns": names},
                        "config": {"severity": severity, "where": _where(touched)},
                    }
                }
            )
    for c in t.columns:
        tests: list[Any] = []
        if len(t.key) == 1 and c.name in t.key:
            tests.append({"unique": {"config": {"where": _where(touched)}}})
        if c.references and c.references in omop.load():
            target = omop.table(c.references)
            tests.append(
                {
                    "relationships": {
                        "arguments": {"to": f"ref('{target.name}')", "field": target.key[0]},
                        "config": {
                            # Only to a table the client onboarded.
                            "enabled": f"{{{{ '{target.name}' in var('tables') }}}}",
                            "severity": "error" if omop.reference_blocks(c) else "warn",
                            "where": _where(
                                touched,
                                f"{c.name} in (select change_key from ' ~ target.database"
                                f" ~ '.' ~ target.schema ~ '.int_{target.name}__batch_latest)",
                            ),
                        },
                    }
                }
            )
        if c.name in EXPECTATIONS.get(t.name, {}):
            tests.append(
                {
                    "accepted_values": {
                        "arguments": {"values": EXPECTATIONS[t.name][c.name]},
                        "config": {"severity": "warn", "where": _where(touched)},
                    }
                }
            )
        if tests:
            columns.append({"name": c.name, "data_tests": tests})
    return model


def _intermediate_yaml(t: omop.Table) -> list[dict[str, Any]]:
    # Rendered when the test runs (macros/cdc.sql: default__get_where_subquery): the
    # batch id is known only then.
    batch = {"where": "{% raw %}batch_id = '{{ batch_id() }}'{% endraw %}"}
    return [
        {
            "name": f"{t.name}_changes",
            "description": (
                f"Change log of {t.name}. Grain: one change event (and the old key of an "
                "update that changed it). Key: (_partition_id, _partition_offset, "
                "change_image). Append-only; the highest offset per partition is the next "
                "run's watermark."
            ),
            "data_tests": [
                {
                    "unique_combination_of_columns": {
                        "arguments": {
                            "columns": ["_partition_id", "_partition_offset", "change_image"]
                        },
                        "config": batch,
                    }
                }
            ],
            "columns": [
                {
                    "name": "change_op",
                    "data_tests": [
                        {"not_null": {"config": batch}},
                        {
                            "accepted_values": {
                                "arguments": {"values": ["c", "u", "d", "r"]},
                                "config": batch,
                            }
                        },
                    ],
                },
                {"name": "change_key", "data_tests": [{"not_null": {"config": batch}}]},
            ],
        },
        {
            "name": f"int_{t.name}__batch_latest",
            "description": (
                f"The latest change per {t.name} key ({', '.join(t.key)}) within this run's "
                "batch. Grain: one key. Key: change_key."
            ),
            "columns": [{"name": "change_key", "data_tests": ["unique", "not_null"]}],
        },
    ]


def _sources_yaml(tables: dict[str, omop.Table]) -> dict[str, Any]:
    return {
        "version": 2,
        "sources": [
            {
                "name": "cdc",
                "description": (
                    "The client's Debezium topics, read through the Trino kafka catalog the "
                    "operator creates. Names come from the run contract's vars."
                ),
                "database": "{{ var('cdc_catalog') }}",
                "schema": "default",
                "quoting": {"identifier": True},
                "tables": [
                    {"name": t, "identifier": f"{{{{ var('topics').get('{t}', '{t}') }}}}"}
                    for t in tables
                ],
            },
            {
                "name": "src",
                "description": (
                    "The client's Postgres, read through the Trino postgresql catalog "
                    "(full-reload mode)."
                ),
                "database": "{{ var('source_catalog') }}",
                "schema": "{{ var('source_schema') }}",
                "tables": [{"name": t} for t in tables],
            },
        ],
    }


MARTS_NOTE = (
    " Tests on the current-state tables look only at the keys this run touched (the"
    " `where` configs, spelled out because test configs cannot call project macros),"
    " so an incremental run costs what changed; a full refresh touches every key."
)


def _dump(comment: str, data: dict[str, Any]) -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=4096)
    lines = textwrap.wrap(comment, 88, initial_indent="# ", subsequent_indent="# ")
    return "\n".join(lines) + "\n" + body


def render_dbt(tables: dict[str, omop.Table]) -> dict[str, str]:
    """Every generated dbt file, by path under dbt/."""
    files = {"macros/omop_cdm.sql": render_macro(tables)}
    for t in tables.values():
        files.update({f"models/{p}": text for p, text in _model_files(t).items()})
    files["models/staging/omop/_sources.yml"] = _dump(HEADER, _sources_yaml(tables))
    for t in tables.values():
        staging = [
            {
                "name": f"stg_cdc__{t.name}",
                "description": f"Grain: one Debezium change event on {t.name}.",
            },
            {
                "name": f"stg_src__{t.name}",
                "description": f"Grain: one {t.name} row as the client's database holds it.",
            },
        ]
        layers = {
            "staging": (HEADER, staging),
            "intermediate": (HEADER, _intermediate_yaml(t)),
            "marts": (HEADER + MARTS_NOTE, [_mart_yaml(t)]),
        }
        for layer, (comment, models) in layers.items():
            files[f"models/{layer}/omop/{t.name}/_{t.name}.yml"] = _dump(
                comment, {"version": 2, "models": models}
            )
    return files


def generate(cdm_dir: Path = DEFAULT_CDM_DIR) -> list[Path]:
    """Write every generated file; returns those that changed."""
    definition = read_definition(cdm_dir)
    changed = []
    text = render_json(definition)
    if not JSON_PATH.exists() or JSON_PATH.read_text() != text:
        JSON_PATH.write_text(text)
        changed.append(JSON_PATH)
    omop.load.cache_clear()
    rendered = render_dbt(omop.load())
    for layer in omop.MODEL_LAYERS:
        for path in sorted((DBT_DIR / "models" / layer / "omop").rglob("*")):
            if path.is_file() and str(path.relative_to(DBT_DIR)) not in rendered:
                path.unlink()  # a table or file the definition no longer has
                changed.append(path)
    for rel, content in rendered.items():
        path = DBT_DIR / rel
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(path)
    return changed
