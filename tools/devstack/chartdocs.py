"""Each chart's README, generated from its Chart.yaml and its documented values.yaml.

The values file is the documentation's source (helm-docs' convention: a comment
starting `# --` describes the key below it, continuing over the following comment
lines); `devstack gen-chart-docs` writes charts/<chart>/README.md and a unit test
fails when a README differs from what its values say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from devstack.paths import REPO_ROOT

CHARTS = REPO_ROOT / "charts"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+|\"[^\"]+\"):(.*)$")


def described_keys(values_text: str) -> dict[tuple[str, ...], str]:
    """Key path -> its `# --` description, in file order, for every mapping key (pure)."""
    values = yaml.safe_load(values_text) or {}
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if comment is not None:
                comment.append(stripped[1:].strip())
            continue
        match = KEY.match(line)
        if not match:
            comment = None if not stripped else comment
            continue
        indent, key = len(match.group(1)), match.group(2).strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(k for _, k in stack), key)
        parent = _get(values, path[:-1])
        if not isinstance(parent, dict) or key not in parent:
            comment = None  # a key inside a list item: part of its parent's default
            continue
        stack.append((indent, key))
        found[path] = " ".join(comment) if comment is not None else ""
        comment = None
    return found


def _get(values: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def _rows(values: dict[str, Any], keys: dict[tuple[str, ...], str]) -> list[tuple[str, ...]]:
    """Keys to list: leaves, and maps documented as a whole (no documented key inside)."""
    rows: list[tuple[str, ...]] = []
    for path, description in keys.items():
        inside = [k for k in keys if k[: len(path)] == path and k != path]
        if any(path[: len(r)] == r for r in rows):
            continue  # within a map listed whole
        if not inside or (description and not any(keys[k] for k in inside)):
            rows.append(path)
    return rows


def render(chart: Path) -> str:
    """The chart's README (pure over its files)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text) or {}
    keys = described_keys(text)
    lines = [
        f"# {meta['name']}",
        "",
        "<!-- GENERATED from Chart.yaml and values.yaml by `uv run devstack gen-chart-docs`:"
        " edit those. -->",
        "",
        f"{meta.get('description', '')}",
        "",
        f"Version {meta['version']}, app version {meta.get('appVersion', '')}; "
        f"Kubernetes {meta.get('kubeVersion', 'any')}. Values are validated by "
        "`values.schema.json`; the install scenarios tested are `ci/*-values.yaml`.",
        "",
        "## Values",
        "",
        "| key | default | description |",
        "|---|---|---|",
    ]
    for path in _rows(values, keys):
        default = json.dumps(_get(values, path), separators=(", ", ": "))
        cell = default.replace("|", "\\|")
        description = keys[path].replace("|", "\\|").replace("<", "&lt;")
        lines.append(f"| `{'.'.join(path)}` | `{cell}` | {description} |")
    return "\n".join(lines) + "\n"


def charts() -> list[Path]:
    return sorted(c for c in CHARTS.iterdir() if (c / "Chart.yaml").exists())
