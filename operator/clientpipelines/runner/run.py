"""One pipeline run: reset staging, dbt deps, Elementary, dbt build, report, publish.

Write-Audit-Publish on Nessie: everything is built on the client's staging branch
(the Trino catalog <client>_staging), and only a fully green build is merged into
`main`, which analysts read. A failure, or a crash at any step, leaves `main`
as it was; the next run starts again from `main`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from clientpipelines import omop
from clientpipelines.clients.errors import ServiceError, ServiceUnavailable
from clientpipelines.clients.nessie import NO_ANCESTOR, NessieClient, Reference
from clientpipelines.naming import LAKE_CATALOG, MAIN_BRANCH
from clientpipelines.runconfig import (
    RUN_ID_ENV,
    TERMINATION_LOG_ENV,
    TERMINATION_LOG_LIMIT,
    RunConfig,
)
from clientpipelines.runner import drift
from clientpipelines.runner.audit import count_table
from clientpipelines.runner.dbt import DbtProject, ElementaryFailed, NodeOutcome
from clientpipelines.runner.lock import LockHeld, run_lock
from clientpipelines.runner.reports import upload
from clientpipelines.runner.watermark import (
    HeadExpired,
    RebuildNeeded,
    check_complete,
    current_filters,
    new_changes,
)

# Exit codes (documented in the README and `clientpipelines-runner run --help`).
EXIT_PUBLISHED = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_UNAVAILABLE = 4
OUTCOMES = {
    EXIT_PUBLISHED: "published",
    EXIT_FAILED: "failed",
    EXIT_CONFIG: "configuration error",
    EXIT_LOCKED: "locked",
    EXIT_UNAVAILABLE: "service unavailable",
}
STEPS = 7
# A Slack-compatible webhook for Elementary's alerts (from the runner's Secret).
ALERTS_WEBHOOK_ENV = "ELEMENTARY_SLACK_WEBHOOK"
SAMPLE_ROWS = 5  # offending rows shown per failed or warned test
# What dbt's generic tests name their result columns (the offending key or value).
SHOWN_COLUMNS = frozenset({"from_field", "unique_field", "value_field", "n_records"})
# The run's log ends with its time per phase, as one JSON object after this prefix
# (benchmarks/runner_incremental.py reads it), so the next bottleneck is visible.
PHASES_PREFIX = "phases: "
T = TypeVar("T")


def _new_run_id() -> str:
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Checked:
    """New changes counted on main before a continuous batch took the lock: its run
    uses them when the watermarks are still the same (else it counts again)."""

    count: int
    # Per table, the filters selecting the new Kafka messages (as new_changes gives).
    filters: dict[str, list[str]]
    # What the count said (a topic that now starts after the watermark).
    notes: tuple[str, ...]
    # When (time.monotonic): an older count is not used, the topics' checks with it.
    at: float


@dataclass(frozen=True)
class RunOptions:
    """How this one run goes (command-line flags), beside what the operator said (RunConfig)."""

    dbt_project_dir: Path
    full_refresh: bool = False
    # dbt unit tests check the models' logic, not the data: they belong in CI (make
    # test runs them), and in every run they would add their queries to the critical path.
    unit_tests: bool = False
    break_lock: bool = False
    run_id: str = field(default_factory=_new_run_id)
    # dbt packages laid out as `dbt deps` does, for where dbt Hub cannot be reached
    # (the runner image has them installed already).
    packages_dir: Path | None = None
    # Seconds to wait for the client's lock when another run holds it (0: refuse at
    # once). Requested runs of a continuous pipeline wait for the batch in progress.
    lock_wait: float = 0.0
    # Set by continuous mode: a lock whose holder's run id starts with it was left
    # by this runner before it restarted, and is broken.
    own_lock_prefix: str | None = None
    # Elementary's report after a published run (a failed run always gets one), and
    # its monitors (volume anomalies: tagged MONITOR_TAG) in the build; continuous
    # mode has both only every CONTINUOUS_REPORT_SECONDS.
    report: bool = True
    # Continuous mode: what its check before the lock found, not read twice.
    checked: Checked | None = None


class RunFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    print(message, flush=True)


class Run:
    """The steps of one run, each printing a progress line."""

    def __init__(
        self,
        config: RunConfig,
        options: RunOptions,
        scratch: Path | None = None,
        dbt_workdir: Path | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.names = config.names
        self.nessie = NessieClient(config.nessie_url, token_file=config.nessie_token_file)
        # Trino's login files (a CA, a token); continuous mode's batches share one.
        self.scratch = scratch or Path(tempfile.mkdtemp(prefix="trino-"))
        self.login = config.trino_login(os.environ, self.scratch)
        self.trino = self.login.client()
        # Where the dbt project is copied: kept between runs (continuous mode) so
        # that dbt parses only what changed; else a temporary folder per run.
        self.dbt_workdir = dbt_workdir
        self.summary: list[str] = []
        # What the operator learns from the termination message (names, never rows).
        self.failed: list[str] = []
        self.warned: list[str] = []
        self.report: str | None = None
        self.report_error: str | None = None
        # Keys the audited batch changed, over every table (a count, never rows).
        self.changed_keys: int | None = None
        self.step_no = 0
        self.full_refresh = options.full_refresh
        # Per table, the filters selecting this batch's new Kafka messages (CDC).
        self.batch_filters: dict[str, list[str]] = {}
        # Seconds per phase, in the order they ran (printed last: PHASES_PREFIX), and
        # "to_published": from the process's start (or the run's) to main moving.
        self.phases: dict[str, float] = {}
        self.started = time.monotonic()

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.monotonic() - started

    def step(self, title: str, phase: str, action: Callable[[], T]) -> T:
        self.step_no += 1
        started = time.monotonic()
        _say(f"[{self.step_no}/{STEPS}] {title} ...")
        with self.timed(phase):
            result = action()
        _say(f"[{self.step_no}/{STEPS}] {title}: done in {time.monotonic() - started:.1f}s")
        return result

    def _main(self) -> Reference:
        main = self.nessie.get_reference(MAIN_BRANCH)
        if main is None:
            raise RunFailed(EXIT_CONFIG, f"Nessie has no branch {MAIN_BRANCH}")
        return main

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

    def pending_changes(self) -> int | None:
        """New Kafka messages since the last publish; None when unknown (build anyway).

        Refuses (HeadExpired) when the topics no longer hold what the run would need.
        """
        if not self.config.cdc:
            return None
        checked = self.options.checked
        try:
            if not self.full_refresh and checked and self._still_holds(checked):
                for note in checked.notes:
                    _say(note)
                self.batch_filters.update(checked.filters)
                _say(
                    f"at least {checked.count} new change(s), as counted before the lock"
                    " (watermarks unchanged)"
                )
                return checked.count
            if not self.full_refresh:
                return new_changes(self.trino, self.config, _say, self.batch_filters)
        except RebuildNeeded as exc:
            self.full_refresh = True
            self.summary.append(f"{exc}: full refresh")
        check_complete(self.trino, self.config)
        return None

    def _still_holds(self, checked: Checked) -> bool:
        """Whether the count made before the lock is this batch's: made moments ago,
        against the same watermarks (another run may have published meanwhile; main
        is every client's, so its head says nothing of this one's tables). The
        filters are open-ended, so they select what arrived since too."""
        if time.monotonic() - checked.at > CHECKED_FOR_SECONDS:
            return False
        try:
            return current_filters(self.trino, self.config) == checked.filters
        except ServiceError:
            return False  # counted again, which says what is wrong

    def check_columns(self) -> None:
        """Every onboarded table has the CDM's columns (runner/drift.py), or nothing is built."""
        filters = None if self.full_refresh else self.batch_filters
        try:
            drift.check(self.trino, self.config, _say, filters)
        except drift.SchemaDrift as exc:
            self.failed = [
                f"schema drift: {t}.{c}" for t, cols in exc.missing.items() for c in cols
            ]
            _say(f"not published: main untouched: {exc}")
            raise RunFailed(EXIT_FAILED, "the source lacks CDM columns") from exc

    def describe(self, node: NodeOutcome) -> str:
        """A node's outcome, and for a test the first rows it found (their keys and values)."""
        line = node.describe()
        if not node.compiled_sql:
            return line
        try:
            # The test's own query (dbt compiled it against staging) returns the offenders.
            columns, rows = self.trino.query_with_columns(
                f"select * from (\n{node.compiled_sql}\n) as offending limit {SAMPLE_ROWS}"  # noqa: S608
            )
        except ServiceError as exc:
            return f"{line} (its rows could not be read: {exc})"
        # Keys and the tested value only: these are patients' records, and logs are
        # read by more people than the lake.
        keep = [i for i, c in enumerate(columns) if c.endswith("_id") or c in SHOWN_COLUMNS]
        shown = "; ".join(", ".join(f"{columns[i]}={row[i]!r}" for i in keep) for row in rows)
        return f"{line}; rows: {shown}" if shown else line

    def elementary_setup(self, project: DbtProject) -> bool:
        """Elementary's tables; when they cannot be built the run goes on without it.

        Built once per package version (Elementary's `metadata` table says which
        built them; they are published with the client's data): ~30 s saved a run.
        """
        version = project.elementary_version()
        metadata = f"{self.names.staging_catalog}.{self.names.elementary_schema}.metadata"
        try:
            built = self.trino.query(f"select max(dbt_pkg_version) from {metadata}")  # noqa: S608
        except ServiceUnavailable:
            raise
        except ServiceError:
            built = []  # not built yet
        if built and built[0][0] == version:
            _say(f"Elementary {version}: its tables are there")
            return True
        try:
            project.elementary_setup()
        except ElementaryFailed as exc:
            project.uninstall_elementary()
            project.variables["elementary_installed"] = False
            _say(f"warning: {exc}: running without Elementary; dbt's own tests are the gate")
            self.summary.append("elementary: setup failed")
            return False
        return True

    def edr_env(self) -> dict[str, str]:
        """Where edr reads this run's results (the `elementary` profile's variables)."""
        return {
            "EDR_TRINO_HOST": self.config.trino_host,
            "EDR_TRINO_PORT": str(self.config.trino_port),
            "EDR_CATALOG": self.names.staging_catalog,
            "EDR_SCHEMA": self.names.elementary_schema,
        }

    def elementary_alerts(self, project: DbtProject) -> None:
        """Elementary's alerts for this run's failed and warned tests (edr monitor).

        Before publishing: edr records which alerts it sent in Elementary's tables,
        and only a published staging keeps that record (else the next run would
        send them again). A failure here only warns.
        """
        webhook = os.environ.get(ALERTS_WEBHOOK_ENV)
        if not webhook:
            return
        try:
            project.elementary_alerts(
                self.edr_env(), webhook, self.config.report_uri(self.options.run_id)
            )
        except Exception as exc:
            _say(f"warning: Elementary's alerts failed: {str(exc).replace(webhook, '<webhook>')}")
            return
        _say("Elementary's alerts sent")

    def elementary_report(self, project: DbtProject) -> None:
        """The report, uploaded where the run contract says; a failure here only warns.

        The build's tests are the gate: a report that cannot be made or stored never
        holds back a publish that passed them.
        """
        c = self.config
        report = project.dir / "target" / "elementary-report.html"
        uri = c.report_uri(self.options.run_id)
        try:
            project.elementary_report(self.edr_env(), report)
            if uri:
                upload(report, uri, c.reports_s3_endpoint)
        except Exception as exc:
            _say(f"warning: the Elementary report failed (publishing is not affected): {exc}")
            self.summary.append("report: failed")
            self.report_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            return
        self.report = uri
        self.summary.append(f"report: {uri or report}")

    def report_step(self, project: DbtProject, failed: bool) -> None:
        """Elementary's report: after every run but continuous mode's published
        batches between its intervals."""
        if self.options.report or failed:
            self.step("Elementary report", "report", lambda: self.elementary_report(project))
            return
        self.step_no += 1
        _say("Elementary report: not this batch (continuous mode makes one at intervals)")

    def audit(self) -> list[str]:
        """Row conservation per table (runner/audit.py); what does not add up blocks."""
        if not self.config.cdc:
            # Full reload: staging is the source as read; there is no batch to conserve.
            _say("full-reload: staging holds the source as read; no change batch to audit")
            return []
        failing = []
        self.changed_keys = 0
        for table in self.config.tables:
            # The same row key the models merge on (omop.Table.key_sql; macros/cdc.sql).
            key = omop.table(table).key_sql()
            counted = count_table(
                self.trino, self.config, table, key, full_refresh=self.full_refresh
            )
            _say(f"  {counted.describe()}")
            self.changed_keys += counted.changed
            if not counted.conserved:
                failing.append(f"row conservation: {counted.describe()}")
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
        if main.hash == NO_ANCESTOR:
            # A run may only merge into main, and Nessie merges only into a branch
            # with a commit; the operator gives an empty main its first one.
            raise RunFailed(
                EXIT_UNAVAILABLE,
                f"{MAIN_BRANCH} has no commit yet: the operator makes its first one "
                "when it reconciles a pipeline (is it running?)",
            )
        head = self.nessie.merge(
            staging,
            main,
            message=f"publish {self.config.client_id} run {self.options.run_id}",
        )
        self.summary.append(f"published: main@{head.hash[:12]}")
        return head

    def execute(self) -> int:
        c, o = self.config, self.options
        _say(f"pipeline run {o.run_id} for client {c.client_id} ({c.ingestion_mode})")
        try:
            # dbt runs in this process and edr beside it: their profiles read the
            # connection from the environment (the token itself, for a JWT login).
            os.environ.update(self.login.dbt_env())
            os.environ.update(self.login.requests_env(self.scratch))
        except (OSError, ValueError) as exc:
            raise RunFailed(EXIT_CONFIG, f"no login for Trino: {exc}") from exc
        lock = run_lock(
            self.nessie,
            self.names.run_lock_branch,
            self._main(),
            run_id=o.run_id,
            deadline_seconds=c.deadline_seconds,
            break_lock=o.break_lock,
            say=_say,
            wait_seconds=o.lock_wait,
            own_prefix=o.own_lock_prefix,
        )
        released: list[float] = []
        with contextlib.ExitStack() as held:
            # Callbacks run last-in first-out: this one after the lock's release, the
            # one registered after the lock just before it, so "unlock" is the release.
            held.callback(
                lambda: (
                    self.phases.update(unlock=time.monotonic() - released[0]) if released else None
                )
            )
            with self.timed("lock"):
                held.enter_context(lock)
            held.callback(lambda: released.append(time.monotonic()))
            tmp = held.enter_context(tempfile.TemporaryDirectory(prefix="clientpipelines-run-"))
            return self._locked(Path(tmp))

    def _locked(self, tmp: Path) -> int:
        """The run's steps, with the client's lock held."""
        c, o = self.config, self.options
        self.step(
            f"reset {self.names.staging_branch} to {MAIN_BRANCH}", "reset", self.reset_staging
        )
        with self.timed("changes"):
            pending = self.pending_changes()
        if pending == 0:
            _say("no new changes since the last published run: nothing to build or publish")
            self.summary.append("no new changes; main untouched")
            return EXIT_PUBLISHED
        with self.timed("columns"):
            self.check_columns()
        # The batch id must never repeat (the batch's latest changes are selected
        # by it); a Job's name can, once the old Job is gone.
        batch_id = f"{o.run_id}-{uuid.uuid4().hex[:8]}"
        project = DbtProject(
            o.dbt_project_dir, self.dbt_workdir or tmp, c.dbt_variables(), batch_id
        )
        elementary = self.step(
            "dbt deps", "deps", lambda: project.install_packages(_say, o.packages_dir)
        )
        self.summary.append(f"elementary: {'installed' if elementary else 'not installed'}")
        # Elementary's own tests (volume anomalies on the marts) run only with it.
        project.variables["elementary_installed"] = elementary
        if elementary:
            elementary = self.step(
                "Elementary setup", "elementary_setup", lambda: self.elementary_setup(project)
            )
        else:
            self.step_no += 1
        built = self.step(
            f"dbt build on {self.names.staging_catalog}",
            "build",
            lambda: project.build(
                select=c.dbt_select,
                full_refresh=self.full_refresh,
                unit_tests=o.unit_tests,
                monitors=o.report,
                say=_say,
            ),
        )
        self.phases["build_setup"] = built.setup_s
        self.phases["build_nodes"] = built.nodes_s
        _say(
            f"dbt: {built.setup_s:.1f}s to start and parse, {built.nodes_s:.1f}s of nodes;"
            " slowest: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in built.slowest)
        )
        failing = [self.describe(n) for n in built.failed]
        self.failed = [n.name for n in built.failed]
        self.warned = [n.name for n in built.warned]
        self.summary.append(
            f"dbt build: {built.passed} passed, {len(built.failed)} failed, "
            f"{len(built.warned)} warned"
        )
        if built.warned:
            # Expectations on source values (any text, per OMOP): reported, not blocking.
            _say("warnings (published anyway; see the Elementary report where installed):")
            for node in built.warned:
                _say(f"  - {self.describe(node)}")
        if failing:
            self.step_no += 1  # no audit of a build that failed its tests
        else:
            # The tests passed; the counts must also add up before main moves.
            failing = self.step("audit: rows conserved", "audit", self.audit)
            self.failed = [f"row conservation: {line.split(':')[1].strip()}" for line in failing]
        if elementary and (failing or built.warned):
            with self.timed("alerts"):
                self.elementary_alerts(project)
        if failing:
            self.step_no += 1  # not published
        else:
            self.step(
                f"publish {self.names.staging_branch} into {MAIN_BRANCH}", "publish", self.publish
            )
            self.phases["to_published"] = time.monotonic() - self.started
        # After publishing: the report never delays (or blocks) fresh data.
        if elementary:
            self.report_step(project, bool(failing))
        if failing:
            _say("not published: main untouched; staging kept to inspect:")
            for line in failing:
                _say(f"  - {line}")
            raise RunFailed(EXIT_FAILED, f"{len(failing)} check(s) failed")
        return EXIT_PUBLISHED


def run(
    config: RunConfig,
    options: RunOptions,
    process_started: float | None = None,
    scratch: Path | None = None,
    dbt_workdir: Path | None = None,
    phases: dict[str, float] | None = None,
) -> int:
    """The run; `process_started` (time.monotonic) counts the imports before it.
    `phases`, when given, receives the run's time per phase."""
    started = time.monotonic()
    runner = Run(config, options, scratch, dbt_workdir)
    if phases is not None:
        runner.phases = phases
    if process_started is not None:
        runner.phases["start"] = started - process_started
        runner.started = process_started
    code = EXIT_FAILED
    try:
        code = runner.execute()
    except RunFailed as exc:
        _say(f"error: {exc}")
        code = exc.code
    except LockHeld as exc:
        _say(f"error: {exc}")
        code = EXIT_LOCKED
    except HeadExpired as exc:
        _say(f"error: refused: {exc}")
        runner.failed = [f"refused: {str(exc).split(': its')[0]}: its oldest changes are gone"]
        code = EXIT_FAILED
    except ServiceUnavailable as exc:
        _say(f"error: a service is unavailable: {exc}")
        code = EXIT_UNAVAILABLE
    except ServiceError as exc:
        _say(f"error: {exc}")
        code = EXIT_FAILED
    finally:
        # Even a crash leaves the operator its outcome (a traceback follows in the log).
        leave_outcome(runner, code)
    _say(
        f"summary: {OUTCOMES[code]} in {time.monotonic() - started:.1f}s; "
        + "; ".join(runner.summary)
    )
    _say(PHASES_PREFIX + json.dumps({k: round(v, 2) for k, v in runner.phases.items()}))
    sys.stdout.flush()
    return code


# Continuous mode: a published batch's Elementary report at most this often (edr
# takes tens of seconds, which would hold back the next batch each time). A batch
# between reports gives Elementary its results only if a node failed or warned
# (dbt/macros/elementary_uploads.sql: the uploads cost seconds a batch); a failed
# batch makes its own report and alerts.
CONTINUOUS_REPORT_SECONDS = 600.0
# Continuous mode: how long the count of new changes made before the lock may serve
# its batch. It takes the lock at once unless told to wait for it; an older
# count is made again, with its checks that the topics are the ones loaded.
CHECKED_FOR_SECONDS = 10.0
# Continuous mode: after a batch that did not publish (a failed test, a service
# down, another run holding the client) the next waits longer, doubling up to this.
CONTINUOUS_MAX_PAUSE = 300.0


def changes_on_main(config: RunConfig, checker: Run) -> Checked | None:
    """Before taking the lock: the new changes beyond the watermark published on main
    (the lake catalog; staging may hold another run's unpublished batch); None when
    unsure (the batch then counts them itself).

    Read-only, so an idle pipeline in continuous mode writes nothing.
    """
    at = time.monotonic()
    filters: dict[str, list[str]] = {}
    notes: list[str] = []
    try:
        count = new_changes(checker.trino, config, notes.append, filters, LAKE_CATALOG)
    except (RebuildNeeded, HeadExpired, ServiceError):
        return None
    return Checked(count, filters, tuple(notes), at)


class _Stop:
    """Set by a signal handler: a plain flag, since a threading.Event's set() could
    wait on the lock its own wait() holds when the signal arrives."""

    def __init__(self) -> None:
        self.requested = False

    def sleep(self, seconds: float) -> None:
        """Sleep up to `seconds`, in short steps so a request ends it."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def run_continuously(
    config: RunConfig,
    options: RunOptions,
    *,
    interval: float,
    process_started: float | None = None,
) -> int:
    """Micro-batches until SIGTERM or SIGINT: every `interval` seconds that Kafka has
    new changes, one run as `run` makes it (reset staging, build and test, audit,
    publish only when green, the same lock), so every batch keeps a scheduled run's
    guarantees. A signal stops it after the batch in progress; the lock is released
    as after any run. `--full-refresh` and `--break-lock` apply to the first batch
    only. Exit code: the last batch's, or 0 when stopped while idle.
    """
    if not config.cdc:
        _say("error: continuous mode needs CDC ingestion (a full reload reads every row)")
        return EXIT_CONFIG
    stop = _Stop()

    def on_signal(signum: int, _frame: object) -> None:
        _say(f"{signal.Signals(signum).name}: stopping after the batch in progress")
        stop.requested = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    code, batches, pause, clean = EXIT_PUBLISHED, 0, interval, True
    reported = -CONTINUOUS_REPORT_SECONDS  # the first batch makes one
    checker: Run | None = None
    # One copy of the dbt project for every batch: dbt's partial parsing then skips
    # what the first batch parsed. Removed when the runner stops.
    dbt_workdir = Path(tempfile.mkdtemp(prefix="clientpipelines-dbt-"))
    _say(f"continuous mode: a batch every {interval:g}s when there are new changes")
    try:
        while not stop.requested:
            started = time.monotonic()
            checker = checker or Run(config, options)  # its scratch serves every batch
            checked = changes_on_main(config, checker) if clean and batches else None
            if checked is not None and checked.count == 0:
                stop.sleep(interval)
                continue
            report_due = time.monotonic() - reported >= CONTINUOUS_REPORT_SECONDS
            batch = dataclasses.replace(
                options,
                run_id=f"{options.run_id}-{batches:06d}",
                report=report_due,
                own_lock_prefix=f"{options.run_id}-",
                checked=checked,
            )
            if batches:
                batch = dataclasses.replace(batch, full_refresh=False, break_lock=False)
            phases: dict[str, float] = {}
            try:
                code = run(
                    config,
                    batch,
                    process_started if batches == 0 else None,
                    checker.scratch,
                    dbt_workdir,
                    phases,
                )
            except Exception:
                # A batch's unexpected failure (the run's own handling let it through)
                # is reported and retried like any failed batch; its lock is released.
                _say(f"error: batch {batch.run_id} failed:\n{traceback.format_exc()}")
                code = EXIT_FAILED
            batches += 1
            if report_due and "build" in phases:
                reported = started  # a batch that built nothing leaves the report due
            if code == EXIT_CONFIG:
                return code
            # Published (or nothing new): staging holds main's content again.
            clean = code == EXIT_PUBLISHED
            if clean or code == EXIT_LOCKED:
                # The lock held by a requested run: the next batch after it, at pace.
                pause = interval
            else:
                pause = min(CONTINUOUS_MAX_PAUSE, max(interval, 2 * pause))
            if not clean:
                _say(f"batch not published ({OUTCOMES[code]}): the next in {pause:g}s")
            stop.sleep(max(0.0, pause - (time.monotonic() - started)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(dbt_workdir, ignore_errors=True)
    _say(f"stopped after {batches} batch(es)")
    return code


def phases_in_log(log: str) -> dict[str, float]:
    """A run's time per phase, from its log (the last PHASES_PREFIX line; pure)."""
    lines = [line for line in log.splitlines() if line.startswith(PHASES_PREFIX)]
    if not lines:
        return {}
    return {str(k): float(v) for k, v in json.loads(lines[-1][len(PHASES_PREFIX) :]).items()}


def outcome_message(runner: Run, code: int) -> str:
    """The run's outcome as JSON within Kubernetes' termination-message limit (pure).

    Names of failed checks and warned tests only (never rows: patients' records);
    a list too long to fit is cut, saying how many were left out.
    """
    outcome: dict[str, object] = {"exitCode": code, "outcome": OUTCOMES[code]}
    if runner.report:
        outcome["report"] = runner.report
    if runner.report_error:
        outcome["reportError"] = runner.report_error
    if code == EXIT_PUBLISHED and runner.changed_keys is not None:
        outcome["changedKeys"] = runner.changed_keys
    lists = {"failed": list(runner.failed), "warned": list(runner.warned)}
    for key in ("warned", "failed"):  # warnings give way first
        kept = lists[key]
        while kept and len(json.dumps({**outcome, **lists}).encode()) > TERMINATION_LOG_LIMIT:
            kept.pop()
            outcome[f"{key}Omitted"] = int(str(outcome.get(f"{key}Omitted", 0))) + 1
    outcome.update({k: v for k, v in lists.items() if v})
    return json.dumps(outcome)


def leave_outcome(runner: Run, code: int) -> None:
    """Write the outcome where the Pod's termination message is taken from.

    Only where the CronJob says where (TERMINATION_MESSAGE_PATH): a run by hand
    leaves no file behind; its log says it all.
    """
    where = os.environ.get(TERMINATION_LOG_ENV)
    if not where:
        return
    try:
        Path(where).write_text(outcome_message(runner, code))
    except OSError as exc:
        _say(f"warning: could not write the termination message {where}: {exc}")
