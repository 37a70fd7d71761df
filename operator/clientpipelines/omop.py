"""The OMOP CDM v5.4 tables the product models, and what follows from their definition.

`omop_cdm54.json` beside this module is the CDM's own definition as data (tables,
columns, CDM datatypes, required, primary and foreign keys), generated from OHDSI's
field-level specification by `uv run devstack gen-omop`; the dbt models, their tests
and the sample data are generated from this module. What the CDM leaves open is
decided here, once:

- the lake's types: row ids bigint (concept ids integer), CDM `float` a double (the
  CDM's own type; Postgres' DDL uses an unbounded NUMERIC, which Iceberg cannot hold
  exactly), `datetime` a timestamp(6),
  every `varchar(n)` a varchar (Iceberg has no length; the source enforces it);
- a row key for the four tables without a primary key (ROW_KEYS);
- which references block a publish (a required one: an event must belong to a person
  the lake has) and which only warn (optional ones: extracts often point outside
  themselves).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CDM_VERSION = "5.4"
DEFINITION = Path(__file__).with_name("omop_cdm54.json")

# Tables with no primary key in v5.4: the columns that identify one of their rows for
# CDC. Debezium needs the source table's REPLICA IDENTITY FULL to send the old row of
# an update or delete, and keys their Kafka messages by these columns.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    # One death per person: the CDM's convention (v5.3 had person_id as the key).
    "death": ("person_id",),
    "fact_relationship": (
        "domain_concept_id_1",
        "fact_id_1",
        "domain_concept_id_2",
        "fact_id_2",
        "relationship_concept_id",
    ),
    "episode_event": ("episode_id", "event_id", "episode_event_field_concept_id"),
    # One row per CDM instance; its name identifies it.
    "cdm_source": ("cdm_source_name",),
}

# The dbt project keeps each table's generated models in one folder per layer,
# dbt/models/<layer>/omop/<table>/: a run copies only its client's tables' folders.
MODEL_LAYERS = ("staging", "intermediate", "marts")


# CDM column names that Postgres and Trino reserve: quoted wherever SQL names them.
RESERVED_WORDS = frozenset({"offset"})

# CDM datatype (lower case, length dropped) -> the lake's (Trino/Iceberg) type.
TRINO_TYPES = {
    "integer": "integer",
    "bigint": "bigint",
    "float": "double",
    "date": "date",
    "datetime": "timestamp(6)",
    "varchar": "varchar",
}


@dataclass(frozen=True)
class Column:
    name: str
    cdm_type: str  # as the CDM writes it, lower case: integer, varchar(50), varchar(max)...
    required: bool
    references: str | None = None  # the referenced CDM table (lower case), if a foreign key

    @property
    def kind(self) -> str:
        """integer, bigint, float, date, datetime or varchar."""
        return self.cdm_type.split("(")[0]

    @property
    def length(self) -> int | None:
        """A varchar's length; None for varchar(max) and other types."""
        if self.kind != "varchar" or "(" not in self.cdm_type:
            return None
        size = self.cdm_type.split("(")[1].rstrip(")")
        return int(size) if size.isdigit() else None

    @property
    def trino_type(self) -> str:
        # Row ids as bigint: the CDM says integer, but large clients' event tables
        # outgrow 2^31 (OHDSI allows bigint there); concept ids stay integer.
        if self.kind == "integer" and self.name.endswith("_id") and not self.is_concept:
            return "bigint"
        return TRINO_TYPES[self.kind]

    @property
    def toastable(self) -> bool:
        """Long text that Postgres may store out of line (TOAST): an update leaving it
        unchanged reaches Debezium without its value."""
        return self.kind == "varchar" and (self.length is None or self.length >= 1000)

    @property
    def sql_name(self) -> str:
        """The column as SQL names it: quoted where it is a reserved word (note_nlp's
        `offset`), the same in Postgres and Trino."""
        return f'"{self.name}"' if self.name in RESERVED_WORDS else self.name

    @property
    def postgres_type(self) -> str:
        """As OHDSI's Postgres DDL declares it."""
        if self.kind == "varchar":
            return f"varchar({self.length})" if self.length else "text"
        return {"float": "numeric", "datetime": "timestamp"}.get(self.kind, self.kind)

    @property
    def is_concept(self) -> bool:
        return self.references == "concept" or self.name.endswith("_concept_id")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    description: str = ""  # OHDSI's, first sentence: what the table holds

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies a row: the primary key, or ROW_KEYS' choice."""
        return self.primary_key or ROW_KEYS[self.name]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def select_list(self) -> str:
        """Every column, as SQL names them (quoted where reserved)."""
        return ", ".join(c.sql_name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def key_sql(self, expr: dict[str, str] | None = None) -> str:
        """The row key as one SQL value: the key column itself, or a JSON array of the
        key's values as text (unambiguous, unlike a separator). `expr` maps a column to
        the expression that holds it (e.g. a field of a Debezium event)."""
        parts = [(expr or {}).get(k, self.column(k).sql_name) for k in self.key]
        if len(parts) == 1:
            return parts[0]
        cast = ", ".join(f"cast({p} as varchar)" for p in parts)
        return f"json_format(cast(array[{cast}] as json))"

    @property
    def key_type(self) -> str:
        """The type of key_sql(): the key column's, or varchar for several columns."""
        return self.column(self.key[0]).trino_type if len(self.key) == 1 else "varchar"

    def references(self, onboarded: tuple[str, ...] | list[str] | None = None) -> list[Column]:
        """Foreign keys to other CDM tables (not the vocabulary), optionally only to
        those in `onboarded`; a table's references to itself included."""
        return [
            c
            for c in self.columns
            if c.references
            and c.references in load()
            and (onboarded is None or c.references in onboarded)
        ]


def reference_blocks(column: Column) -> bool:
    """A required reference (every event names its person) blocks a publish when it
    dangles; an optional one (a provider, a visit) only warns."""
    return column.required


@cache
def load() -> dict[str, Table]:
    """Every CDM table, by name, in the definition's order."""
    raw = json.loads(DEFINITION.read_text())
    tables = {}
    for name, spec in raw["tables"].items():
        columns = tuple(
            Column(c["name"], c["type"], bool(c["required"]), c.get("references"))
            for c in spec["columns"]
        )
        tables[name] = Table(name, columns, tuple(spec["primary_key"]), spec.get("description", ""))
    return tables


def table(name: str) -> Table:
    """A CDM table by name; KeyError naming it and the CDM version if there is none."""
    try:
        return load()[name]
    except KeyError:
        raise KeyError(f"{name!r} is not an OMOP CDM v{CDM_VERSION} table") from None


def unknown(tables: list[str] | tuple[str, ...]) -> list[str]:
    """The names in `tables` that the CDM does not define."""
    return [t for t in tables if t not in load()]


def in_dependency_order(tables: list[str] | tuple[str, ...]) -> list[str]:
    """`tables` ordered so that a table comes after those it references (self-references
    aside): the order to load sample data in, or to check references."""
    remaining = list(tables)
    ordered: list[str] = []
    while remaining:
        for name in remaining:
            needs = {c.references for c in table(name).references(remaining)} - {name}
            if not needs - set(ordered):
                ordered.append(name)
                remaining.remove(name)
                break
        else:  # a cycle: keep the given order for the rest
            ordered += remaining
            break
    return ordered
