"""The operator chart's Grafana dashboard, run against a real Prometheus.

No Grafana can be had on this machine (it is published neither to PyPI, npm, the Go
module proxy in a buildable form with its frontend, nor Debian), so the dashboard's
panels are checked and pictured the other way round: a real Prometheus (Debian's
package, unpacked) scrapes the operator; every panel's queries run against it; and
`render_svg` draws the panels from the answers (a plain picture of the same grid,
not Grafana's look).
"""

from __future__ import annotations

import html
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.artifacts import prometheus_home
from devstack.paths import REPO_ROOT
from devstack.procs import free_port, wait_for

DASHBOARD = REPO_ROOT / "charts" / "clientpipeline-operator" / "dashboards" / "clientpipelines.json"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # row, stat, timeseries
    unit: str
    grid: tuple[int, int, int, int]  # x, y, w, h in Grafana's 24-column grid
    queries: tuple[Query, ...]


def panels(dashboard: dict[str, Any], client: str) -> list[Panel]:
    """The dashboard's panels with `$client` set (pure)."""
    found = []
    for p in dashboard["panels"]:
        g = p["gridPos"]
        queries = tuple(
            Query(t["expr"].replace("$client", client), t.get("legendFormat", ""))
            for t in p.get("targets") or []
        )
        found.append(
            Panel(
                p["title"].replace("$client", client),
                p["type"],
                p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
                (g["x"], g["y"], g["w"], g["h"]),
                queries,
            )
        )
    return found


class Prometheus:
    """A Prometheus process scraping `targets` every second, with its data in `workdir`."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "clientpipelines-operator", "static_configs": [{"targets": targets}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = prometheus_home() / "bin" / "prometheus"
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for("Prometheus to be ready", self._ready, timeout=60, interval=0.5)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:  # noqa: S310 - http to our own process
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def _api(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        url = f"{self.url}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own process
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self._api("query", query=expr)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(self._api("query_range", query=expr, start=start, end=end, step=step)["result"])


@contextmanager
def running_prometheus(workdir: Path, targets: list[str]) -> Iterator[Prometheus]:
    prom = Prometheus(workdir, targets)
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


# -- the picture ------------------------------------------------------------------------------

COLUMN, ROW_HEIGHT, PAD = 50, 34, 8
COLOURS = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9")


def _legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def _value(v: float, unit: str) -> str:
    if unit == "bytes":
        for suffix, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(v) >= size:
                return f"{v / size:.1f} {suffix}"
        return f"{v:.0f} B"
    if unit == "s":
        return (
            f"{v / 3600:.1f} h" if v >= 3600 else f"{v / 60:.1f} min" if v >= 120 else f"{v:.0f} s"
        )
    if unit == "ops":
        return f"{v:.2f}/s"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


Series = tuple[str, list[tuple[float, float]]]


def collect(
    prom: Prometheus, board: list[Panel], start: float, end: float, step: float
) -> dict[str, list[Series]]:
    """Every panel's series over [start, end], by panel title."""
    data: dict[str, list[Series]] = {}
    for panel in board:
        series: list[Series] = []
        for q in panel.queries:
            for result in prom.query_range(q.expr, start, end, step):
                points = [(float(t), float(v)) for t, v in result["values"]]
                series.append((_legend(q.legend, result["metric"]), points))
        data[panel.title] = series
    return data


def render_svg(board: list[Panel], data: dict[str, list[Series]], title: str) -> str:
    """The panels on Grafana's grid, drawn from the queried series (pure)."""
    height = max(p.grid[1] + p.grid[3] for p in board) * ROW_HEIGHT + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{24 * COLUMN}" height="{height}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="100%" height="100%" fill="#111217"/>'
        f'<text x="{PAD}" y="24" fill="#ccccdc" font-size="16">{html.escape(title)}</text>',
    ]
    for panel in board:
        x, y, w, h = panel.grid
        px, py, pw, ph = (
            x * COLUMN + PAD,
            y * ROW_HEIGHT + 40,
            w * COLUMN - 2 * PAD,
            h * ROW_HEIGHT - PAD,
        )
        name = html.escape(panel.title)
        if panel.kind == "row":
            out.append(f'<text x="{px}" y="{py + 20}" fill="#ccccdc" font-size="14">{name}</text>')
            continue
        out.append(f'<rect x="{px}" y="{py}" width="{pw}" height="{ph}" fill="#181b1f" rx="3"/>')
        out.append(f'<text x="{px + 8}" y="{py + 16}" fill="#ccccdc">{name}</text>')
        series = data.get(panel.title) or []
        if not series:
            out.append(f'<text x="{px + 8}" y="{py + 40}" fill="#e24d42">no data</text>')
            continue
        if panel.kind == "stat":
            texts = [f"{_value(points[-1][1], panel.unit)}" for _, points in series if points]
            labels = [label for label, points in series if points]
            out.append(
                f'<text x="{px + 8}" y="{py + ph - 18}" fill="#7eb26d" font-size="28">'
                f"{html.escape(' / '.join(texts))}</text>"
            )
            out.append(
                f'<text x="{px + 8}" y="{py + ph - 4}" fill="#8e8e8e">'
                f"{html.escape(' / '.join(labels))}</text>"
            )
            continue
        _plot(out, series, panel.unit, (px + 50, py + 24, pw - 60, ph - 52))
    out.append("</svg>")
    return "\n".join(out)


def _plot(
    out: list[str], series: list[Series], unit: str, box: tuple[float, float, float, float]
) -> None:
    x0, y0, w, h = box
    times = [t for _, points in series for t, _ in points]
    values = [v for _, points in series for _, v in points]
    t_min, t_max = min(times), max(times)
    v_min, v_max = min(0.0, *values), max(values)
    v_max = v_max if v_max > v_min else v_min + 1
    span = t_max - t_min or 1
    for at, value in ((y0 + 8, v_max), (y0 + h, v_min)):
        out.append(
            f'<text x="{x0 - 4}" y="{at}" fill="#8e8e8e" text-anchor="end">'
            f"{_value(value, unit)}</text>"
        )
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#2f3137"/>')
    for i, (label, points) in enumerate(series[: len(COLOURS)]):
        colour = COLOURS[i]
        path = " ".join(
            f"{x0 + (t - t_min) / span * w:.1f},{y0 + h - (v - v_min) / (v_max - v_min) * h:.1f}"
            for t, v in points
        )
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.append(
            f'<text x="{x0 + 4 + i * 110}" y="{y0 + h + 16}" fill="{colour}">'
            f"{html.escape(label[:18])}</text>"
        )
    seconds = t_max - t_min
    out.append(
        f'<text x="{x0 + w}" y="{y0 + h + 16}" fill="#8e8e8e" text-anchor="end">'
        f"{seconds / 60:.0f} min</text>"
    )


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def snapshot(prom: Prometheus, client: str, start: float, out: Path) -> dict[str, list[Series]]:
    """Query every panel since `start` and draw the picture into `out`; the data drawn."""
    board = panels(load(), client)
    end = time.time()
    data = collect(prom, board, start, end, step=max(1.0, (end - start) / 300))
    out.write_text(render_svg(board, data, f"Client pipelines (client {client})"))
    return data
