"""The dbt project's packages: what production installs from dbt Hub and tests from a copy."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from clientpipelines.runner.dbt import edr_project_dir

DBT = Path(__file__).resolve().parents[2] / "dbt"
# Elementary's and dbt_utils' packages as `dbt deps` lays them out, beside the
# repository where dbt Hub cannot be reached (never vendored into it).
DBT_PACKAGES = Path(__file__).resolve().parents[3] / "shared" / "dbt-packages"


def _pinned(project: Path) -> dict[str, str]:
    packages = yaml.safe_load((project / "packages.yml").read_text())["packages"]
    return {p["package"].split("/")[-1]: str(p["version"]) for p in packages if "package" in p}


def test_elementary_package_matches_the_installed_cli() -> None:
    # edr reads the tables the package writes; Elementary asks for equal versions.
    assert _pinned(DBT)["elementary"] == version("elementary-data")
    # ...and edr's own dbt project asks for that same package version.
    assert _pinned(edr_project_dir())["elementary"] == version("elementary-data")


def test_the_offline_packages_are_the_pinned_versions() -> None:
    if not DBT_PACKAGES.is_dir():
        pytest.skip(f"no offline dbt packages at {DBT_PACKAGES}")
    # dbt_utils' own dbt_project.yml does not carry its release (it says 0.1.0).
    installed = yaml.safe_load((DBT_PACKAGES / "elementary" / "dbt_project.yml").read_text())
    assert str(installed["version"]) == _pinned(DBT)["elementary"]
