"""dbt and Elementary, in-process: the project copied to scratch space, deps, build, report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ELEMENTARY = "elementary"


def _package_hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why dbt's package hub cannot be reached, or None when it answers.

    Asked first because `dbt deps` retries for seconds before it gives up, on every run.
    """
    import requests  # noqa: PLC0415
    from dbt.clients.registry import DEFAULT_REGISTRY_BASE_URL  # noqa: PLC0415

    url = str(DEFAULT_REGISTRY_BASE_URL)  # DBT_PACKAGE_HUB_URL points it at a mirror
    try:
        requests.head(url, timeout=timeout)
    except requests.RequestException as exc:
        return f"dbt's package hub {url} is unreachable: {type(exc).__name__}"
    return None


@dataclass(frozen=True)
class NodeOutcome:
    """A model or test that did not simply pass."""

    resource_type: str
    name: str
    status: str  # fail, error, runtime error, warn
    message: str
    # A test's query: the rows it returns are the offending ones.
    compiled_sql: str | None = None

    def describe(self) -> str:
        return f"{self.resource_type} {self.name}: {self.status} {self.message}".strip()


@dataclass
class BuildResult:
    passed: int = 0
    failed: list[NodeOutcome] = field(default_factory=list)
    warned: list[NodeOutcome] = field(default_factory=list)


class DbtProject:
    """A writable copy of the dbt project, and the dbt commands a run needs."""

    def __init__(self, source: Path, workdir: Path, variables: dict[str, Any]) -> None:
        self.dir = workdir / "dbt"
        shutil.copytree(source, self.dir, ignore=shutil.ignore_patterns("target", "logs"))
        self.variables = variables
        self.elementary = False

    def install_packages(self, say: Callable[[str], None]) -> bool:
        """Install packages where dbt Hub answers; True when Elementary's is there."""
        installed = (self.dir / "dbt_packages" / ELEMENTARY).is_dir()
        why = "the package is missing"
        if not installed and (self.dir / "packages.yml").exists():
            unreachable = _package_hub_unreachable()
            if unreachable:
                why = unreachable
            else:
                ok, _ = self.invoke(["deps"], quiet=True)
                installed = ok and (self.dir / "dbt_packages" / ELEMENTARY).is_dir()
                why = "dbt deps did not install it"
        if not installed:
            # Without the package, packages.yml would make every dbt command fail.
            (self.dir / "packages.yml").unlink(missing_ok=True)
            say(
                f"Elementary is not installed ({why}): running without its report;"
                " dbt's own tests are the gate"
            )
        self.elementary = installed
        return installed

    def invoke(self, args: list[str], *, quiet: bool = False) -> tuple[bool, list[Any]]:
        """Run dbt in-process; returns success and the node results.

        Every name the project needs (catalogs, schema, topics, tables) comes in as
        vars from the run contract; the connection's credentials from the environment.
        """
        from dbt.cli.main import dbtRunner  # noqa: PLC0415 - heavy import, only when running

        argv = [
            *args,
            "--project-dir",
            str(self.dir),
            "--profiles-dir",
            str(self.dir),
            "--target-path",
            str(self.dir / "target"),
            "--log-path",
            str(self.dir / "logs"),
        ]
        if args[0] != "deps":
            argv += ["--vars", json.dumps(self.variables)]
        argv = ["--no-use-colors", *argv]
        if quiet:
            argv = ["--quiet", *argv]
        result = dbtRunner().invoke(argv)
        nodes = list(getattr(result.result, "results", None) or [])
        return bool(result.success), nodes

    def build(self, *, select: str | None, full_refresh: bool, unit_tests: bool) -> BuildResult:
        """`dbt build`: what passed, what failed (blocks publishing), what only warned."""
        args = ["build"]
        if select:
            args += ["--select", select]
        if full_refresh:
            args.append("--full-refresh")
        if not unit_tests:
            args += ["--exclude-resource-type", "unit_test"]
        ok, nodes = self.invoke(args)
        result = BuildResult()
        for n in nodes:
            status = str(n.status)
            if status in ("pass", "success"):
                result.passed += 1
                continue
            if status not in ("fail", "error", "runtime error", "warn"):
                continue  # skipped
            outcome = NodeOutcome(
                str(n.node.resource_type),
                n.node.name,
                status,
                str(n.message or ""),
                getattr(n.node, "compiled_code", None) if n.node.resource_type == "test" else None,
            )
            (result.warned if status == "warn" else result.failed).append(outcome)
        if not ok and not result.failed:
            result.failed.append(
                NodeOutcome("dbt", "build", "error", "failed before running any node (see above)")
            )
        return result

    def elementary_setup(self) -> None:
        self.invoke(["run", "--select", ELEMENTARY])

    def elementary_report(self, client_id: str, run_id: str) -> str:
        """Elementary's HTML report, uploaded under reports/<client>/<run id>.html."""
        report = self.dir / "target" / "elementary-report.html"
        subprocess.run(
            [
                "edr",
                "report",
                "--project-dir",
                str(self.dir),
                "--profiles-dir",
                str(self.dir),
                "--file-path",
                str(report),
            ],
            check=True,
        )
        bucket = os.environ.get("REPORT_S3_BUCKET")
        if not bucket:
            return f"report: {report} (REPORT_S3_BUCKET not set: not uploaded)"
        import boto3  # noqa: PLC0415 - only where a report is uploaded

        key = f"reports/{client_id}/{run_id}.html"
        boto3.client("s3", endpoint_url=os.environ.get("REPORT_S3_ENDPOINT")).upload_file(
            str(report), bucket, key
        )
        return f"report: s3://{bucket}/{key}"
