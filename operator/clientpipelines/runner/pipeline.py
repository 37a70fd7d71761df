"""One pipeline run: reset staging, dbt deps, Elementary, dbt build, report, publish.

Write-Audit-Publish on Nessie: everything is built on the client's staging branch
(the Trino catalog <client>_staging), and only a fully green build is merged into
`main`, which analysts read. A failure, or a crash at any step, leaves `main`
as it was; the next run starts again from `main`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.clients.nessie import NessieClient, Reference
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import MAIN_BRANCH, ClientNames

# Exit codes (documented in the README).
EXIT_PUBLISHED = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_UNAVAILABLE = 4

TABLES = ("care_site", "provider")
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    client_id: str
    trino_host: str
    trino_port: int
    nessie_url: str
    dbt_project_dir: Path
    ingestion_mode: str = "cdc"
    source_schema: str = "public"
    dbt_select: str | None = None
    dbt_vars: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    # dbt unit tests check the models' logic, not the data: they belong in CI (make
    # test runs them), and in every run they would add their queries to the critical path.
    unit_tests: bool = False
    break_lock: bool = False
    # A run never holds the lock longer than this (the Job's activeDeadlineSeconds).
    deadline_seconds: float = 3600.0
    run_id: str = field(
        default_factory=lambda: (
            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        )
    )

    @property
    def names(self) -> ClientNames:
        return ClientNames(self.client_id)


def new_offsets_filters(marks: list[tuple[int, int]]) -> list[str]:
    """Filters, one per UNION ALL branch, for the Kafka messages above `marks`.

    The same filters the dbt change-log models read with (macros/cdc.sql): plain
    conjunctions on = and > that Trino's kafka connector turns into partition and
    offset ranges; an OR, <> or NOT IN would make it read the whole topic.
    """
    if not marks:
        return ["true"]
    seen = {p for p, _ in marks}
    filters = [f"_partition_id = {p} and _partition_offset > {o}" for p, o in sorted(marks)]
    filters += [f"_partition_id = {p}" for p in range(max(seen)) if p not in seen]
    filters.append(f"_partition_id > {max(seen)}")
    return filters


class RunFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    print(message, flush=True)


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


class Run:
    """The steps of one run, each printing a progress line."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.names = config.names
        self.nessie = NessieClient(config.nessie_url)
        self.trino = TrinoClient(
            config.trino_host,
            config.trino_port,
            user=os.environ.get("TRINO_USER", "clientpipelines-runner"),
        )
        self.summary: list[str] = []
        self.step_no = 0
        self.full_refresh = config.full_refresh

    def step(self, title: str, action: Callable[[], T]) -> T:
        self.step_no += 1
        started = time.monotonic()
        _say(f"[{self.step_no}/6] {title} ...")
        result = action()
        _say(f"[{self.step_no}/6] {title}: done in {time.monotonic() - started:.1f}s")
        return result

    # -- the lock ---------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse when another run holds this client.

        The lock is a Nessie branch (never merged) whose one commit says which run
        holds it and until when: a run killed without cleaning up holds it only until
        its deadline (the Job's activeDeadlineSeconds), after which the next run
        breaks it.
        """
        name = self.names.run_lock_branch
        main = self._main()
        try:
            lock = self.nessie.create_branch(name, main)
        except Conflict:
            self._break_stale_lock(name)
            try:
                lock = self.nessie.create_branch(name, main)
            except Conflict as exc:
                raise RunFailed(EXIT_LOCKED, f"another run took the lock {name} meanwhile") from exc
        expires = time.time() + self.config.deadline_seconds
        self.nessie.commit_namespace(
            lock,
            "run-lock",
            json.dumps({"run_id": self.config.run_id, "expires": expires}),
        )
        try:
            yield
        finally:
            current = self.nessie.get_reference(name)
            if current is not None:
                self.nessie.delete_branch(current)

    def _break_stale_lock(self, name: str) -> None:
        held = self.nessie.get_reference(name)
        if held is None:
            return
        holder: dict[str, Any] = {}
        for commit in self.nessie.log(name, limit=1):
            try:
                holder = dict(json.loads(commit.message))
            except ValueError:
                holder = {}
        expired = float(holder.get("expires", float("inf"))) < time.time()
        if not (expired or self.config.break_lock):
            until = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder["expires"]))
                if "expires" in holder
                else "it finishes"
            )
            raise RunFailed(
                EXIT_LOCKED,
                f"another run ({holder.get('run_id', 'starting')}) holds "
                f"{self.config.client_id} (Nessie branch {name}) until {until}; "
                "if no run is in progress, rerun with --break-lock",
            )
        self.nessie.delete_branch(held)
        why = "expired" if expired else "--break-lock"
        _say(f"broke the lock of run {holder.get('run_id', '?')} ({why})")

    def _main(self) -> Reference:
        main = self.nessie.get_reference(MAIN_BRANCH)
        if main is None:
            raise RunFailed(EXIT_CONFIG, f"Nessie has no branch {MAIN_BRANCH}")
        return main

    # -- steps --------------------------------------------------------------------------------

    def reset_staging(self) -> Reference:
        """Point the staging branch at main's head (expected-hash assign), creating it if needed."""
        main = self._main()
        staging = self.nessie.get_reference(self.names.staging_branch)
        if staging is None:
            self.nessie.create_branch(self.names.staging_branch, main)
        elif staging.hash != main.hash:
            self.nessie.assign_branch(staging, main)
        self.summary.append(f"staging reset to main@{main.hash[:12]}")
        return main

    def new_changes(self) -> int | None:
        """Kafka messages beyond the published watermark; None when it cannot be told cheaply.

        Also checks that the watermark belongs to the topic as it is now: a client
        deleted and onboarded again under the same id has new topics that start again
        at offset 0 with a new snapshot, and reading above the old watermark would
        skip them. Then the run rebuilds from every offset (a full refresh).
        """
        if self.config.ingestion_mode != "cdc" or self.full_refresh:
            return None
        names = self.names
        total = 0
        for table in TABLES:
            changes = f"{names.staging_catalog}.{names.lake_schema}.{table}_changes"
            try:
                marks = self.trino.query(
                    # Identifiers come from the validated client id (naming module).
                    "select _partition_id, max(_partition_offset),"  # noqa: S608
                    " max_by(change_lsn, _partition_offset),"
                    f" max_by(change_ts_ms, _partition_offset) from {changes} group by 1"
                )
            except ServiceError:
                return None  # first run: no change log yet
            topic = f'{names.cdc_catalog}.default."{names.topic(self.config.source_schema, table)}"'
            # One statement: the new messages' count, and what the topic holds at
            # each watermark (kafka catalog queries cost ~0.3 s each however small).
            counts = " union all ".join(
                f"select count(*) as n from {topic} where {f}"  # noqa: S608
                for f in new_offsets_filters([(p, o) for p, o, _, _ in marks])
            )
            at_marks = "".join(
                " union all select 'mark', _partition_id, _partition_offset,"  # noqa: S608
                " cast(json_extract_scalar(_message, '$.source.lsn') as bigint),"
                " cast(json_extract_scalar(_message, '$.ts_ms') as bigint)"
                f" from {topic} where _partition_id = {p} and _partition_offset = {o}"
                for p, o, _, _ in marks
            )
            rows = self.trino.query(
                "select 'new', sum(n), cast(null as bigint), cast(null as bigint),"  # noqa: S608
                f" cast(null as bigint) from ({counts}){at_marks}"
            )
            live = {(r[1], r[2]): (r[3], r[4]) for r in rows if r[0] == "mark"}
            if any(live.get((p, o)) != (lsn, ts) for p, o, lsn, ts in marks):
                _say(
                    f"{topic}: the change at the published watermark is not in the topic "
                    "(it was deleted and created again): rebuilding from every offset"
                )
                self.full_refresh = True
                self.summary.append(f"{table} topic recreated: full refresh")
                return None
            total += int(next(r[1] for r in rows if r[0] == "new") or 0)
        return total

    def prepare_project(self, workdir: Path) -> tuple[Path, bool]:
        """Copy the dbt project to a writable folder; install packages where dbt Hub answers."""
        project = workdir / "dbt"
        shutil.copytree(
            self.config.dbt_project_dir,
            project,
            ignore=shutil.ignore_patterns("target", "logs"),
        )
        installed = (project / "dbt_packages" / "elementary").is_dir()
        why = "the package is missing"
        if not installed and (project / "packages.yml").exists():
            unreachable = _package_hub_unreachable()
            if unreachable:
                why = unreachable
            else:
                ok, _ = self.dbt(project, ["deps"], quiet=True)
                installed = ok and (project / "dbt_packages" / "elementary").is_dir()
                why = "dbt deps did not install it"
        if not installed:
            # Without the package, packages.yml would make every dbt command fail.
            (project / "packages.yml").unlink(missing_ok=True)
            _say(
                f"Elementary is not installed ({why}): running without its report;"
                " dbt's own tests are the gate"
            )
        self.summary.append(f"elementary: {'installed' if installed else 'not installed'}")
        return project, installed

    def dbt(self, project: Path, args: list[str], *, quiet: bool = False) -> tuple[bool, list[Any]]:
        """Run dbt in-process; returns success and the node results."""
        from dbt.cli.main import dbtRunner  # noqa: PLC0415 - heavy import, only when running

        names = self.names
        os.environ.update(
            {
                "DBT_CATALOG": names.staging_catalog,
                "DBT_SCHEMA": names.lake_schema,
                "TRINO_HOST": self.config.trino_host,
                "TRINO_PORT": str(self.config.trino_port),
                "CLIENT_ID": self.config.client_id,
                "INGESTION_MODE": self.config.ingestion_mode,
                "SOURCE_SCHEMA": self.config.source_schema,
            }
        )
        variables = {
            **self.config.dbt_vars,
            "client_id": self.config.client_id,
            "ingestion_mode": self.config.ingestion_mode,
            "source_schema": self.config.source_schema,
            "batch_id": self.config.run_id,
        }
        argv = [
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(project / "target"),
            "--log-path",
            str(project / "logs"),
        ]
        if args[0] != "deps":
            argv += ["--vars", json.dumps(variables)]
        argv = ["--no-use-colors", *argv]
        if quiet:
            argv = ["--quiet", *argv]
        result = dbtRunner().invoke(argv)
        nodes = list(getattr(result.result, "results", None) or [])
        return bool(result.success), nodes

    def build(self, project: Path) -> list[str]:
        """`dbt build` on staging; returns the failing nodes (empty when all passed)."""
        args = ["build"]
        if self.config.dbt_select:
            args += ["--select", self.config.dbt_select]
        if self.full_refresh:
            args.append("--full-refresh")
        if not self.config.unit_tests:
            args += ["--exclude-resource-type", "unit_test"]
        ok, nodes = self.dbt(project, args)
        failing = [
            f"{n.node.resource_type} {n.node.name}: {n.status!s} {n.message or ''}".strip()
            for n in nodes
            if str(n.status) in ("fail", "error", "runtime error")
        ]
        if not ok and not failing:
            failing = ["dbt build failed before running any node (see the output above)"]
        passed = sum(1 for n in nodes if str(n.status) in ("pass", "success"))
        self.summary.append(f"dbt build: {passed} passed, {len(failing)} failed")
        return failing

    def publish(self) -> Reference:
        """Merge staging into main. Only called when every model and test passed."""
        staging = self.nessie.get_reference(self.names.staging_branch)
        main = self._main()
        if staging is None:
            raise RunFailed(EXIT_FAILED, "the staging branch disappeared during the run")
        if staging.hash == main.hash:
            self.summary.append("nothing to publish: staging equals main")
            return main
        head = self.nessie.merge(
            staging,
            main,
            message=f"publish {self.config.client_id} run {self.config.run_id}",
        )
        self.summary.append(f"published: main@{head.hash[:12]}")
        return head

    # -- the whole run --------------------------------------------------------------------------

    def execute(self) -> int:
        c = self.config
        _say(f"pipeline run {c.run_id} for client {c.client_id} ({c.ingestion_mode})")
        with self.lock(), tempfile.TemporaryDirectory(prefix="clientpipelines-run-") as tmp:
            self.step(f"reset {self.names.staging_branch} to {MAIN_BRANCH}", self.reset_staging)
            pending = self.new_changes()
            if pending == 0:
                _say("no new changes since the last published run: nothing to build or publish")
                self.summary.append("no new changes; main untouched")
                return EXIT_PUBLISHED
            project, elementary = self.step("dbt deps", lambda: self.prepare_project(Path(tmp)))
            if elementary:
                self.step(
                    "Elementary setup", lambda: self.dbt(project, ["run", "--select", "elementary"])
                )
            else:
                self.step_no += 1
            failing = self.step(
                f"dbt build on {self.names.staging_catalog}", lambda: self.build(project)
            )
            if elementary:
                self.step("Elementary report", lambda: self._report(project))
            else:
                self.step_no += 1
            if failing:
                _say("not published: these failed (main untouched; staging kept to inspect):")
                for line in failing:
                    _say(f"  - {line}")
                raise RunFailed(EXIT_FAILED, f"{len(failing)} model(s) or test(s) failed")
            self.step(f"publish {self.names.staging_branch} into {MAIN_BRANCH}", self.publish)
        return EXIT_PUBLISHED

    def _report(self, project: Path) -> None:
        """Elementary's HTML report, uploaded under reports/<client>/<run id>.html."""
        import subprocess  # noqa: PLC0415

        report = project / "target" / "elementary-report.html"
        subprocess.run(
            [
                "edr",
                "report",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--file-path",
                str(report),
            ],
            check=True,
        )
        bucket = os.environ.get("REPORT_S3_BUCKET")
        if not bucket:
            self.summary.append(f"report: {report} (REPORT_S3_BUCKET not set: not uploaded)")
            return
        import boto3  # noqa: PLC0415 - elementary-data depends on it

        key = f"reports/{self.config.client_id}/{self.config.run_id}.html"
        boto3.client("s3", endpoint_url=os.environ.get("REPORT_S3_ENDPOINT")).upload_file(
            str(report), bucket, key
        )
        self.summary.append(f"report: s3://{bucket}/{key}")


def run(config: RunConfig) -> int:
    runner = Run(config)
    started = time.monotonic()
    try:
        code = runner.execute()
    except RunFailed as exc:
        _say(f"error: {exc}")
        code = exc.code
    except ServiceUnavailable as exc:
        _say(f"error: a service is unavailable: {exc}")
        code = EXIT_UNAVAILABLE
    except ServiceError as exc:
        _say(f"error: {exc}")
        code = EXIT_FAILED
    outcome = {
        0: "published",
        1: "failed",
        2: "configuration error",
        3: "locked",
        4: "service unavailable",
    }[code]
    _say(f"summary: {outcome} in {time.monotonic() - started:.1f}s; " + "; ".join(runner.summary))
    sys.stdout.flush()
    return code
