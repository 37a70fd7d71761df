"""The package declares what it imports, and nothing of the dev stack."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from devstack.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "operator" / "clientpipelines"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[<>=\[;~! ]", r, maxsplit=1)[0]) for r in requirements}


def _imports(files: list[Path]) -> set[str]:
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"clientpipelines", "__future__"}


def _undeclared(files: list[Path], declared: set[str]) -> dict[str, list[str]]:
    dists = packages_distributions()
    return {
        module: dists.get(module, ["?"])
        for module in sorted(_imports(files))
        if not {_normal(d) for d in dists.get(module, [])} & declared
    }


def test_every_third_party_import_is_declared_where_it_is_used() -> None:
    base = _names(PYPROJECT["dependencies"])
    everything = list(PACKAGE.rglob("*.py"))
    extras = {}
    for extra in ("runner", "app"):
        declared = base | _names(PYPROJECT["optional-dependencies"][extra])
        extras[extra] = (list((PACKAGE / extra).rglob("*.py")), declared)
    of_extras = {f for files, _ in extras.values() for f in files}
    assert _undeclared([f for f in everything if f not in of_extras], base) == {}
    for files, declared in extras.values():
        assert _undeclared(files, declared) == {}


def test_the_product_does_not_import_the_dev_stack() -> None:
    assert "devstack" not in _imports(list(PACKAGE.rglob("*.py")))
    wheel = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    assert wheel["build"]["targets"]["wheel"]["packages"] == ["operator/clientpipelines"]
