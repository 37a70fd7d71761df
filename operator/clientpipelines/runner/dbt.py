"""dbt and Elementary, in-process: the project copied to scratch space, deps, build, report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clientpipelines import omop

ELEMENTARY = "elementary"
# The environment variable that carries a run's batch id to dbt (macros/cdc.sql:
# batch_id(); the var batch_id_env names it).
BATCH_ID_ENV = "CLIENTPIPELINES_BATCH_ID"
# The environment variable saying which builds' results go to Elementary: "failures"
# for a build without a report (macros/elementary_uploads.sql; the var
# elementary_uploads_env names it).
UPLOADS_ENV = "CLIENTPIPELINES_ELEMENTARY_UPLOADS"
# Tests that watch trends (Elementary's volume anomalies), not a batch's correctness:
# they never block a publish, and continuous mode runs them only with a report.
MONITOR_TAG = "monitor"
# Never copied with the project: dbt's output of another invocation.
COPY_IGNORED = ("target", "logs")
# How many of a build's slowest nodes it names (with their time).
SLOWEST_NODES = 5
# An edr command never holds a run (and the client's lock) longer than this.
EDR_TIMEOUT = 600
# A model that failed only because a service dropped a request is re-run (`dbt retry`)
# this many times, after these pauses, before the run gives up (see transient_error).
BUILD_RETRY_PAUSES = (5.0, 15.0, 40.0)
# Errors of transport, not of data or SQL: Nessie's client when a request never got an
# answer (Iceberg's commits are atomic, so nothing was half-written), or the socket
# to Trino, Nessie or S3 failing.
TRANSIENT_MARKERS = (
    "Failed to execute GET request against",
    "Failed to execute POST request against",
    "Failed to execute PUT request against",
    "Failed to execute DELETE request against",
    "Connection refused",
    "Connection reset",
    "Broken pipe",
    "header parser received no bytes",
    "NO_NODES_AVAILABLE",
)


def transient_error(message: str) -> bool:
    """Whether a node's error is a dropped request that a re-run can get past."""
    return any(marker in message for marker in TRANSIENT_MARKERS)


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
    # Where the build's time went: dbt's own start (import, parse, graph) and its
    # nodes' execution (dbt's elapsed time), retries included but not the pauses
    # before them; the slowest nodes.
    setup_s: float = 0.0
    nodes_s: float = 0.0
    slowest: list[tuple[str, float]] = field(default_factory=list)


def _retryable(nodes: list[Any]) -> list[str]:
    """The failed nodes' names when every failure is transient; else none (no retry)."""
    failed = [n for n in nodes if str(n.status) in ("fail", "error", "runtime error")]
    if failed and all(
        str(n.status) == "error" and transient_error(str(n.message or "")) for n in failed
    ):
        return [n.node.name for n in failed]
    return []


def _fingerprint(source: Path, tables: list[str]) -> str:
    """What a copy of the project depends on: every source file's path and content,
    and the tables it keeps."""
    digest = hashlib.sha256(json.dumps(sorted(tables)).encode())
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and relative.parts[0] not in COPY_IGNORED:
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class DbtProject:
    """A writable copy of the dbt project, and the dbt commands a run needs.

    A `workdir` that already holds a copy of the same project for the same tables is
    reused as it is, with dbt's partial-parse state (target/) and the packages: a
    run after the first then skips most of dbt's parsing (continuous mode's batches
    share one). `batch_id` reaches dbt in the environment (BATCH_ID_ENV), never in
    --vars: a change of vars makes dbt parse the whole project again.
    """

    def __init__(
        self, source: Path, workdir: Path, variables: dict[str, Any], batch_id: str | None = None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir / "dbt"
        self.variables = {
            **variables,
            "batch_id_env": BATCH_ID_ENV,
            "elementary_uploads_env": UPLOADS_ENV,
        }
        self.batch_id = batch_id
        onboarded = list(variables.get("tables") or [])
        stamp = self._stamp = workdir / "dbt.source"
        fingerprint = _fingerprint(source, onboarded)
        self.reused = stamp.is_file() and stamp.read_text() == fingerprint and self.dir.is_dir()
        if not self.reused:
            stamp.unlink(missing_ok=True)
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.copytree(source, self.dir, ignore=shutil.ignore_patterns(*COPY_IGNORED))
            # Only the client's tables' models: dbt parses every file it finds, and all
            # the CDM's tables would cost each run seconds of parsing for models it
            # disables. A folder named after a CDM table (models/<layer>/<group>/<table>/:
            # the generated models, the unit tests of one table's models) goes with it.
            for folder in (self.dir / "models").glob("*/*/*"):
                if folder.is_dir() and folder.name in omop.load() and folder.name not in onboarded:
                    shutil.rmtree(folder)
            stamp.write_text(fingerprint)
        self.elementary = False
        self._views_fresh = False
        self.last_elapsed = 0.0

    def install_packages(self, say: Callable[[str], None], packages_dir: Path | None) -> bool:
        """Lay out the project's packages; True when Elementary's is there.

        From `packages_dir` (the packages as `dbt deps` lays them out) when given,
        else from dbt Hub where it answers. The runner image has them already.
        """
        target = self.dir / "dbt_packages"
        installed = (target / ELEMENTARY).is_dir()
        why = "the package is missing"
        if not installed and packages_dir is not None:
            copy_packages(packages_dir, target)
            installed = (target / ELEMENTARY).is_dir()
            why = f"{packages_dir} has no {ELEMENTARY} package"
        elif not installed and (self.dir / "packages.yml").exists():
            unreachable = _package_hub_unreachable()
            if unreachable:
                why = unreachable
            else:
                ok, _ = self.invoke(["deps"], quiet=True)
                installed = ok and (target / ELEMENTARY).is_dir()
                why = "dbt deps did not install it"
        if installed and packages_dir is not None:
            edr = edr_project_dir()
            if not (edr / "dbt_packages" / ELEMENTARY).is_dir():
                copy_packages(packages_dir, edr / "dbt_packages")
        if not installed:
            # Without the package, packages.yml would make every dbt command fail.
            (self.dir / "packages.yml").unlink(missing_ok=True)
            say(
                f"Elementary is not installed ({why}): running without its report;"
                " dbt's own tests are the gate"
            )
        self.elementary = installed
        return installed

    def invoke(
        self, args: list[str], *, quiet: bool = False, env: dict[str, str] | None = None
    ) -> tuple[bool, list[Any]]:
        """Run dbt in-process, with `env` set meanwhile; returns success and the node
        results.

        `self.last_elapsed` is then the command's execution time as dbt counts it
        (its nodes), without dbt's start and parse.

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
        env = dict(env or {})
        if self.batch_id is not None:
            env[BATCH_ID_ENV] = self.batch_id
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            result = dbtRunner().invoke(argv)
        finally:  # as it was before, set or not
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        nodes = list(getattr(result.result, "results", None) or [])
        self.last_elapsed = float(getattr(result.result, "elapsed_time", 0.0) or 0.0)
        return bool(result.success), nodes

    def build(
        self,
        *,
        select: str | None,
        full_refresh: bool,
        unit_tests: bool,
        monitors: bool = True,
        say: Callable[[str], None] = print,
    ) -> BuildResult:
        """`dbt build`: what passed, what failed (blocks publishing), what only warned.

        Nodes that failed only on a dropped request (and those skipped after them) are
        re-run with `dbt retry`; a test that fails, or any other error, is never retried.
        """
        args = ["build"]
        if select:
            args += ["--select", select]
        if full_refresh:
            args.append("--full-refresh")
        if not unit_tests:
            args += ["--exclude-resource-type", "unit_test"]
        # The monitors are Elementary's tests: without it there are none to leave out.
        excluded = [] if monitors or not self.elementary else [f"tag:{MONITOR_TAG}"]
        if self.elementary:
            # Elementary's own models are built at setup (once per version) and its
            # "views" before edr reads them; its hooks still record this build.
            excluded.append(f"package:{ELEMENTARY}")
        if excluded:
            args += ["--exclude", *excluded]
        # Without a report, Elementary gets this build's results only if one failed.
        env = {UPLOADS_ENV: "failures"} if not monitors and self.elementary else {}
        started = time.monotonic()
        ok, nodes = self.invoke(args, env=env)
        nodes_s, paused = self.last_elapsed, 0.0
        for pause in BUILD_RETRY_PAUSES:
            retryable = _retryable(nodes)
            if ok or not retryable:
                break
            say(
                f"{', '.join(retryable)}: a service dropped a request; "
                f"re-running the failed and skipped nodes (dbt retry) in {pause:.0f}s"
            )
            time.sleep(pause)
            paused += pause
            ok, again = self.invoke(["retry"], env=env)
            nodes_s += self.last_elapsed
            # The retry's results replace the first ones for the nodes it re-ran.
            by_id = {n.node.unique_id: n for n in nodes}
            by_id.update({n.node.unique_id: n for n in again})
            nodes = list(by_id.values())
        result = BuildResult(nodes_s=nodes_s)
        result.setup_s = max(0.0, time.monotonic() - started - nodes_s - paused)
        timed = sorted(
            ((n.node.name, float(getattr(n, "execution_time", 0.0) or 0.0)) for n in nodes),
            key=lambda pair: -pair[1],
        )
        result.slowest = timed[:SLOWEST_NODES]
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
            # Elementary never blocks a publish: its nodes and hooks only warn.
            elementary = getattr(n.node, "package_name", None) == ELEMENTARY
            (result.warned if status == "warn" or elementary else result.failed).append(outcome)
        if not ok and not result.failed and self.elementary and result.passed:
            result.warned.append(
                NodeOutcome("dbt", "hooks", "warn", "a hook failed after the build (see above)")
            )
        elif not ok and not result.failed:
            result.failed.append(
                NodeOutcome("dbt", "build", "error", "failed before running any node (see above)")
            )
        return result

    def uninstall_elementary(self) -> None:
        """Go on without Elementary (its hooks would fail every dbt command)."""
        shutil.rmtree(self.dir / "dbt_packages" / ELEMENTARY, ignore_errors=True)
        (self.dir / "packages.yml").unlink(missing_ok=True)
        self.elementary = False
        # A copy kept for the next run (continuous mode) is no longer the project:
        # that run makes a fresh one, and tries Elementary again.
        self._stamp.unlink(missing_ok=True)

    def elementary_version(self) -> str:
        """The installed Elementary package's version (its dbt_project.yml)."""
        import yaml  # noqa: PLC0415 - dbt's dependency

        project = self.dir / "dbt_packages" / ELEMENTARY / "dbt_project.yml"
        return str(yaml.safe_load(project.read_text())["version"])

    def elementary_setup(self) -> None:
        """Elementary's own tables (results, artifacts) in <lake schema>_elementary."""
        ok, nodes = self.invoke(["run", "--select", ELEMENTARY], quiet=True)
        if not ok:
            failed = [n.node.name for n in nodes if str(n.status) not in ("success", "pass")]
            raise ElementaryFailed(f"Elementary's models failed to build: {failed}")

    def refresh_elementary_views(self) -> None:
        """Elementary's "views" are tables here (macros/views_as_tables.sql): rebuilt
        before edr reads them, so they include this run's results. Once per run."""
        if self._views_fresh:
            return
        ok, _ = self.invoke(
            ["run", "--select", f"{ELEMENTARY},config.materialized:view"], quiet=True
        )
        if not ok:
            raise ElementaryFailed("Elementary's result views failed to build")
        self._views_fresh = True

    def edr(self, command: str, env: dict[str, str], *args: str, webhook: str | None = None) -> str:
        """Run Elementary's CLI on this run's results; its output, or ElementaryFailed.

        `env` names the catalog and schema (the `elementary` profile reads them).
        """
        self.refresh_elementary_views()
        # edr's settings, read from --config-dir and (its version check) ~/.edr: no
        # telemetry and no PyPI lookup from a pipeline run; the alerts' webhook here
        # rather than on a command line anyone on the host can read.
        home = self.dir / "edr-home"
        config_dir = home / ".edr"
        config_dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "anonymous_usage_tracking": False,
            "disable_elementary_version_check": True,
        }
        if webhook:
            settings["slack"] = {"notification_webhook": webhook}
        config = config_dir / "config.yml"
        config.write_text(json.dumps(settings))  # JSON is YAML
        config.chmod(0o600)
        edr = shutil.which("edr") or str(Path(sys.executable).with_name("edr"))
        argv = [edr, command, "--project-dir", str(self.dir), "--profiles-dir", str(self.dir)]
        argv += ["--config-dir", str(config_dir), "--target-path", str(self.dir / "edr-target")]
        try:
            done = subprocess.run(
                [*argv, *args],
                env={
                    **os.environ,
                    **env,
                    "HOME": str(home),
                    # edr runs dbt on its own project inside the package: keep dbt's
                    # files in scratch space (the image's root filesystem is read-only).
                    "DBT_TARGET_PATH": str(self.dir / "edr-target" / "dbt"),
                    "DBT_LOG_PATH": str(self.dir / "edr-target" / "logs"),
                },
                cwd=self.dir,
                capture_output=True,
                text=True,
                timeout=EDR_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ElementaryFailed(f"edr {command} did not finish in {EDR_TIMEOUT} s") from exc
        except OSError as exc:
            raise ElementaryFailed(f"edr {command} could not start: {exc}") from exc
        if done.returncode != 0:
            # The output can quote data (dbt and Trino errors): it goes to the run's
            # log, the exception (status, Events) only says that edr failed.
            print(done.stdout + done.stderr, flush=True)
            raise ElementaryFailed(f"edr {command} exited {done.returncode} (its output is above)")
        return done.stdout + done.stderr

    def elementary_report(self, env: dict[str, str], report: Path) -> None:
        """`edr report` into `report`, from the results this run uploaded."""
        self.edr(
            "report",
            env,
            *("--file-path", str(report), "--open-browser", "false", "--disable-samples", "true"),
        )
        if not report.is_file():
            raise ElementaryFailed(f"edr report wrote no {report.name}")

    def elementary_alerts(self, env: dict[str, str], webhook: str, report_url: str | None) -> None:
        """`edr monitor`: Elementary's alerts on this run's test results, to a Slack webhook."""
        args = ["--days-back", "1", "--disable-samples", "true"]
        if report_url:
            args += ["--report-url", report_url]
        self.edr("monitor", env, *args, webhook=webhook)


class ElementaryFailed(Exception):
    """Elementary could not do its part; the run's own gate (dbt's tests) still holds."""


def edr_project_dir() -> Path:
    """The dbt project inside Elementary's CLI that `edr` runs; it needs the packages too."""
    from elementary.monitor.dbt_project_utils import CLI_DBT_PROJECT_PATH  # noqa: PLC0415

    return Path(CLI_DBT_PROJECT_PATH)


def copy_packages(source: Path, target: Path) -> list[str]:
    """Copy every package folder of `source` (a `dbt deps` layout) into `target`.

    Each package is copied aside and renamed into place, so runs installing into
    the same folder at once (edr's project is shared) never see half a package.
    """
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for package in sorted(p for p in source.iterdir() if (p / "dbt_project.yml").is_file()):
        if (target / package.name).exists():
            continue
        # Staged beside dbt_packages, not in it: dbt reads every folder there as a package.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".installing-") as tmp:
            shutil.copytree(package, Path(tmp) / package.name)
            try:
                (Path(tmp) / package.name).rename(target / package.name)
            except OSError:
                if not (target / package.name).is_dir():
                    raise
                continue  # another run installed it first
        copied.append(package.name)
    return copied
