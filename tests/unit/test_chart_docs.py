"""Each chart's README is generated from its values.yaml: `uv run devstack gen-chart-docs`."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import chartdocs


@pytest.mark.parametrize("chart", chartdocs.charts(), ids=lambda c: c.name)
def test_the_chart_readme_is_what_its_values_say(chart: Path) -> None:
    assert (chart / "README.md").read_text() == chartdocs.render(chart), (
        f"{chart.name}/README.md is stale: run `uv run devstack gen-chart-docs`"
    )


def test_documented_keys_are_read_with_their_whole_comment() -> None:
    text = """# -- First line
# and its continuation.
outer:
  # -- Inner key.
  inner: 1
  plain: 2
listed:
  - name: x
"""
    keys = chartdocs.described_keys(text)
    assert keys == {
        ("outer",): "First line and its continuation.",
        ("outer", "inner"): "Inner key.",
        ("outer", "plain"): "",
        ("listed",): "",
    }
