"""The operator chart's alert rules, as rendered, checked and unit-tested by a real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from devstack.artifacts import prometheus_home
from devstack.paths import REPO_ROOT
from tests.integration.test_charts import helm

CHART = REPO_ROOT / "charts" / "clientpipeline-operator"
RULE_TESTS = REPO_ROOT / "tests" / "alerts" / "clientpipelines-alerts.test.yaml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = prometheus_home() / "bin" / "promtool"
    return subprocess.run([str(tool), *args], cwd=cwd, capture_output=True, text=True, check=False)


def rendered_rules(values: str) -> dict[str, object]:
    """The PrometheusRule's spec (a Prometheus rule file) from the chart as it ships."""
    text = helm(
        "template", "clientpipelines", str(CHART), "-n", "platform", "-f", str(CHART / values)
    )
    (rule,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    return dict(rule["spec"])


def test_the_rendered_alert_rules_pass_promtool_check_and_their_unit_tests(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules("ci/ha-values.yaml")))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = rendered_rules("ci/ha-values.yaml")
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}  # type: ignore[attr-defined]
    tested = {
        t["alertname"]
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    assert alerts == tested


def test_the_rule_is_off_by_default() -> None:
    text = helm("template", "clientpipelines", str(CHART), "-n", "platform")
    assert "PrometheusRule" not in [d["kind"] for d in yaml.safe_load_all(text) if d]
