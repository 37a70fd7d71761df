"""The dbt project's configuration that only shows in production (dbt Hub is unreachable here)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import yaml

DBT = Path(__file__).resolve().parents[2] / "dbt"


def test_elementary_package_matches_the_installed_cli() -> None:
    # edr reads the tables the package writes; Elementary asks for equal versions.
    packages = yaml.safe_load((DBT / "packages.yml").read_text())["packages"]
    pinned = next(p["version"] for p in packages if p["package"] == "elementary-data/elementary")
    assert str(pinned) == version("elementary-data")
