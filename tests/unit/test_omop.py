"""The OMOP CDM definition the product carries: generated from OHDSI's, and what follows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clientpipelines import omop
from clientpipelines.manifests import CRD_PATH
from devstack import omopgen
from devstack.paths import REPO_ROOT


def test_the_generated_files_are_what_the_cdm_definition_gives() -> None:
    if not (omopgen.DEFAULT_CDM_DIR / "OMOP_CDMv5.4_Field_Level.csv").exists():
        pytest.skip(f"no OMOP CDM v5.4 definition at {omopgen.DEFAULT_CDM_DIR}")
    definition = omopgen.read_definition(omopgen.DEFAULT_CDM_DIR)
    assert omopgen.JSON_PATH.read_text() == omopgen.render_json(definition), (
        "run `uv run devstack gen-omop`"
    )
    rendered = omopgen.render_dbt(omop.load())
    for rel, text in rendered.items():
        path = omopgen.DBT_DIR / rel
        assert path.exists() and path.read_text() == text, f"{rel}: run `uv run devstack gen-omop`"
    on_disk = {
        str(p.relative_to(omopgen.DBT_DIR))
        for layer in omop.MODEL_LAYERS
        for p in (omopgen.DBT_DIR / "models" / layer / "omop").rglob("*")
        if p.is_file()
    }
    assert on_disk == {r for r in rendered if r.startswith("models/")}


def test_every_cdm_table_is_there_with_a_row_key() -> None:
    tables = omop.load()
    assert len(tables) == 27
    for name in ("person", "visit_occurrence", "measurement", "death", "episode_event"):
        assert name in tables
    assert "concept" not in tables  # the vocabulary is not a client's data
    assert tables["person"].key == ("person_id",)
    assert {t.name for t in tables.values() if not t.primary_key} == set(omop.ROW_KEYS)
    for name, key in omop.ROW_KEYS.items():
        assert all(tables[name].column(k).required for k in key), name


def test_types_follow_the_cdm() -> None:
    m = omop.table("measurement")
    assert m.column("value_as_number").trino_type == "double"
    assert m.column("value_as_number").postgres_type == "numeric"
    assert m.column("measurement_datetime").trino_type == "timestamp(6)"
    assert m.column("measurement_date").trino_type == "date"
    assert m.column("measurement_source_value").postgres_type == "varchar(50)"
    assert omop.table("note").column("note_text").postgres_type == "text"


def test_row_keys_as_sql() -> None:
    assert omop.table("person").key_sql() == "person_id"
    assert omop.table("episode_event").key_sql({"event_id": "e"}) == (
        "json_format(cast(array[cast(episode_id as varchar), cast(e as varchar),"
        " cast(episode_event_field_concept_id as varchar)] as json))"
    )
    assert omop.table("episode_event").key_type == "varchar"


def test_references_and_their_weight() -> None:
    visit = omop.table("visit_occurrence")
    refs = {c.name: c.references for c in visit.references()}
    assert refs["person_id"] == "person"
    assert "visit_concept_id" not in refs  # the vocabulary: not a client's table
    assert [c.name for c in visit.references(["person"])] == ["person_id"]
    assert omop.reference_blocks(visit.column("person_id"))
    assert not omop.reference_blocks(visit.column("provider_id"))


def test_dependency_order_puts_parents_first() -> None:
    order = omop.in_dependency_order(["measurement", "visit_occurrence", "person", "care_site"])
    assert order.index("person") < order.index("visit_occurrence") < order.index("measurement")


def test_the_crd_accepts_exactly_the_cdm_tables() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    source = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    tables = source["properties"]["source"]["properties"]["postgres"]["properties"]["tables"]
    assert tables["items"]["enum"] == list(omop.load())


def test_the_runner_copies_only_the_clients_tables_models(tmp_path: Path) -> None:
    from clientpipelines.runner.dbt import DbtProject  # noqa: PLC0415

    project = DbtProject(REPO_ROOT / "dbt", tmp_path, {"tables": ["person", "death"]})
    kept = {p.name for p in (project.dir / "models" / "marts" / "omop").iterdir()}
    assert kept == {"person", "death"}


def test_drift_names_missing_columns_and_extra_ones() -> None:
    from clientpipelines.runner.drift import SchemaDrift, compare  # noqa: PLC0415

    provider = omop.table("provider")
    present = set(provider.column_names) - {"npi"} | {"local_code"}
    assert compare(provider, present) == (["npi"], ["local_code"])
    assert compare(provider, set(provider.column_names)) == ([], [])
    message = str(SchemaDrift({"provider": ["npi", "dea"]}))
    assert "provider: npi, dea" in message


def test_the_toast_placeholder_is_the_same_for_debezium_and_dbt() -> None:
    from clientpipelines.operator.desired import UNAVAILABLE_VALUE  # noqa: PLC0415

    project = yaml.safe_load((REPO_ROOT / "dbt" / "dbt_project.yml").read_text())
    assert project["vars"]["debezium_unavailable_value"] == UNAVAILABLE_VALUE
    assert omop.table("note").column("note_text").toastable
    assert not omop.table("note").column("note_title").toastable


def test_the_runner_reuses_its_copy_only_while_project_and_tables_are_the_same(
    tmp_path: Path,
) -> None:
    import shutil  # noqa: PLC0415

    from clientpipelines.runner.dbt import DbtProject  # noqa: PLC0415

    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "dbt", source, ignore=shutil.ignore_patterns("target", "logs"))
    work = tmp_path / "work"
    first = DbtProject(source, work, {"tables": ["person"]}, "batch-1")
    assert not first.reused
    # dbt's partial-parse state, as a first build leaves it.
    state = first.dir / "target" / "partial_parse.msgpack"
    state.parent.mkdir()
    state.write_bytes(b"state")
    again = DbtProject(source, work, {"tables": ["person"]}, "batch-2")
    assert again.reused and state.read_bytes() == b"state"
    # The batch id is never a var: a var that changes makes dbt parse everything.
    assert "batch_id" not in again.variables and again.batch_id == "batch-2"

    other_tables = DbtProject(source, work, {"tables": ["person", "death"]}, "batch-3")
    assert not other_tables.reused and not state.exists()
    assert (other_tables.dir / "models" / "marts" / "omop" / "death").is_dir()

    macros = source / "macros" / "cdc.sql"
    macros.write_text(macros.read_text() + "\n{# changed #}\n")
    edited = DbtProject(source, work, {"tables": ["person", "death"]}, "batch-4")
    assert not edited.reused
    assert "{# changed #}" in (edited.dir / "macros" / "cdc.sql").read_text()
