"""The Grafana dashboard and alert rules name only metrics the operator exports (pure)."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

from clientpipelines.operator import metrics  # noqa: F401 - registers the operator's metrics
from devstack import dashboard
from devstack.paths import REPO_ROOT

METRIC = re.compile(r"\bclientpipelines_[a-z_]+")


def _exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":  # exposed with _total, whether or not counted yet
            names.add(f"{family.name}_total")
        names.update(s.name for s in family.samples)
    return names


def test_every_metric_the_dashboard_and_the_alerts_query_is_exported() -> None:
    board = dashboard.panels(dashboard.load(), "acme")
    queried = {m for p in board for q in p.queries for m in METRIC.findall(q.expr)}
    rules = (REPO_ROOT / "charts/clientpipeline-operator/templates/prometheusrule.yaml").read_text()
    queried |= set(METRIC.findall(rules))
    assert queried
    assert queried <= _exported(), queried - _exported()


def test_the_client_variable_is_filled_in() -> None:
    board = dashboard.panels(dashboard.load(), "acme")
    assert not any("$client" in q.expr for p in board for q in p.queries)
    assert any('client="acme"' in q.expr for p in board for q in p.queries)


def test_the_picture_draws_each_panel_and_says_when_one_has_no_data() -> None:
    board = dashboard.panels(dashboard.load(), "acme")
    chart = next(p for p in board if p.kind == "timeseries")
    stat = next(p for p in board if p.kind == "stat")
    data = {
        chart.title: [("acme", [(0.0, 1.0), (60.0, 3.0)])],
        stat.title: [("Ready", [(60.0, 2.0)])],
    }
    svg = dashboard.render_svg(board, data, "test")
    assert svg.count("<polyline") == 1
    assert ">2<" in svg  # the stat's last value
    assert svg.count("no data") == len([p for p in board if p.queries]) - 2
