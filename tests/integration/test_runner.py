"""The pipeline runner end to end: Postgres -> Debezium -> Kafka -> dbt on Trino -> Nessie main."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from clientpipelines import omop
from clientpipelines.clients.nessie import NessieClient, Reference
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.naming import ClientNames
from clientpipelines.runconfig import RunConfig
from clientpipelines.runner.run import phases_in_log
from devstack.sampledata import CLINICAL_TABLES, SAMPLE_TABLES, ClientSource, SampleData
from devstack.stack import Endpoints, Stack
from devstack.wiring import (
    lake_differences,
    lake_equals_source,
    rewire_connector,
    runner_env,
    set_mode,
    unwire_client,
    wait_for_cdc,
    wire_client,
)
from tests.platform_state import earliest_offset, s3_object, set_topic_config
from tests.receiver import webhook_receiver

# Elementary's and dbt_utils' dbt packages as `dbt deps` lays them out, beside the
# repository (dbt Hub is unreachable here; they are never vendored into it).
DBT_PACKAGES = Path(__file__).resolve().parents[3] / "shared" / "dbt-packages"


def contract(stack: Stack, src: ClientSource, mode: str = "cdc") -> dict[str, str]:
    """The environment the operator's CronJob gives a run of this client."""
    return runner_env(stack, src, mode)


def runner(
    env: dict[str, str], *extra: str, wrapper: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The runner as the CronJob's container runs it: a process with env and args."""
    argv = (
        [sys.executable, "-c", wrapper]
        if wrapper
        else [sys.executable, "-m", "clientpipelines.runner.cli"]
    )
    return subprocess.run(
        [*argv, "run", *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def lake_rows(trino: TrinoClient, client: str, table: str) -> list[tuple[object, ...]]:
    t = omop.table(table)
    schema = ClientNames(client).lake_schema
    return trino.query(f"select {t.select_list} from lake.{schema}.{table} order by {t.key_sql()}")


def assert_lake_equals_source(stack: Stack, src: ClientSource) -> None:
    diffs = lake_differences(stack, src.client_id)
    assert all(d == 0 and n == lake for n, lake, d in diffs.values()), diffs


def published_state(
    endpoints: Endpoints, trino: TrinoClient, src: ClientSource
) -> tuple[str, dict[str, list[tuple[object, ...]]]]:
    """main's head and the client's published rows: what a refused run must leave."""
    return main_hash(endpoints), {t: lake_rows(trino, src.client_id, t) for t in SAMPLE_TABLES}


def main_hash(endpoints: Endpoints) -> str:
    ref = endpoints.nessie().get_reference("main")
    assert ref is not None
    return ref.hash


@pytest.fixture
def cdc_client(platform: Stack) -> Iterator[ClientSource]:
    src = wire_client(platform, f"r{uuid.uuid4().hex[:8]}", rows=300)
    yield src
    unwire_client(platform, src.client_id)


# A client whose tables reference each other through a required field (every
# observation period names its person): a dangling one blocks a publish.
PERSON_TABLES = ("person", "observation_period")


@pytest.fixture
def person_client(platform: Stack) -> Iterator[ClientSource]:
    src = wire_client(platform, f"r{uuid.uuid4().hex[:8]}", rows=60, tables=PERSON_TABLES)
    yield src
    unwire_client(platform, src.client_id)


def orphan_period(src: ClientSource, period_id: int) -> None:
    """An observation period of a person who does not exist (the source has no FK)."""
    with psycopg.connect(src.dsn(), autocommit=True) as conn:
        conn.execute(
            "insert into observation_period values (%s, 999999, '2020-01-01', '2020-12-31', 32817)",
            (period_id,),
        )


def test_changes_flow_through_to_the_published_tables(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    first = runner(contract(platform, src), "--unit-tests")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[6/7] publish" in first.stdout
    # Each table's counts added up before main moved.
    assert "provider: 0 on main + 300 inserted - 0 deleted = 300; staging has 300 (conserved)" in (
        first.stdout
    )
    # The dbt unit tests of the merge logic ran (only on request: they test logic, not data).
    for unit_test in (
        "delete_after_update_wins",
        "last_of_two_updates_wins",
        "primary_key_change_deletes_old_key_and_creates_new",
    ):
        assert f"int_provider__batch_latest::{unit_test} " in first.stdout
        assert f"PASS int_provider__batch_latest::{unit_test} " in first.stdout
    assert_lake_equals_source(platform, src)

    # Inserts, updates, deletes, and a primary-key update.
    SampleData(platform).apply_changes(src.client_id, count=200, seed=11)
    with psycopg.connect(src.dsn(), autocommit=True) as conn:
        conn.execute(
            "update provider set provider_id = 900001 where provider_id = "
            "(select min(provider_id) from provider)"
        )
        # Verbatim source values outside the expected codes: legitimate per OMOP.
        conn.execute(
            "update provider set gender_source_value = 'male' where provider_id ="
            " (select min(provider_id) from provider)"
        )
        conn.execute("update provider set gender_source_value = '' where provider_id = 900001")
    wait_for_cdc(platform, src.client_id)
    second = runner(contract(platform, src))
    assert second.returncode == 0, second.stdout + second.stderr
    # ...published, with a warning that names what it found.
    assert "warnings (published anyway" in second.stdout
    # The log ends with where the run's time went, every phase of a published run.
    phases = phases_in_log(second.stdout)
    assert set(phases) >= {
        "start", "lock", "reset", "changes", "columns", "deps", "build", "build_setup",
        "build_nodes", "audit", "publish", "unlock", "to_published",
    }, phases  # fmt: skip
    assert all(v >= 0 for v in phases.values()), phases
    assert phases["build_nodes"] > 0 and phases["build_setup"] > 0, phases
    assert phases["build_setup"] + phases["build_nodes"] <= phases["build"] + 0.05, phases
    assert "accepted_values_provider_gender_source_value" in second.stdout
    assert "value_field='male'" in second.stdout
    assert_lake_equals_source(platform, src)

    # Nothing new: no build, no commit on main.
    before = main_hash(endpoints)
    third = runner(contract(platform, src))
    assert third.returncode == 0, third.stdout + third.stderr
    assert "no new changes" in third.stdout
    assert main_hash(endpoints) == before


def test_a_client_onboarded_again_is_rebuilt_from_its_new_topics(
    platform: Stack, endpoints: Endpoints, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0

    # Deleted with deletionPolicy Delete and onboarded again under the same id: new
    # topics start at offset 0 with a new snapshot, below the published watermark.
    rewire_connector(platform, src)
    SampleData(platform).apply_changes(src.client_id, count=50, seed=23)
    wait_for_cdc(platform, src.client_id)
    again = runner(contract(platform, src))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "rebuilding from every offset" in again.stdout
    assert_lake_equals_source(platform, src)


def test_cdc_to_full_reload_and_back_ends_equal_to_the_source(
    platform: Stack, cdc_client: ClientSource
) -> None:
    src, sample = cdc_client, SampleData(platform)
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0
    assert_lake_equals_source(platform, src)

    # To full-reload, as the operator does on the spec change: connector, offsets,
    # slot, publication and topics go. Changes keep coming meanwhile.
    set_mode(platform, src, "full-reload")
    sample.apply_changes(src.client_id, count=60, seed=31)
    reload = runner(contract(platform, src, "full-reload"))
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert_lake_equals_source(platform, src)
    sample.apply_changes(src.client_id, count=60, seed=37)  # unpublished when switching back

    # Back to cdc: a fresh snapshot on a fresh slot (not the old offsets), rebuilt whole.
    set_mode(platform, src, "cdc")
    wait_for_cdc(platform, src.client_id)
    back = runner(contract(platform, src))
    assert back.returncode == 0, back.stdout + back.stderr
    assert "full refresh" in back.stdout
    assert_lake_equals_source(platform, src)
    sample.apply_changes(src.client_id, count=60, seed=41)
    wait_for_cdc(platform, src.client_id)
    incremental = runner(contract(platform, src))
    assert incremental.returncode == 0, incremental.stdout + incremental.stderr
    assert "full refresh" not in incremental.stdout
    assert_lake_equals_source(platform, src)


def test_bad_data_fails_a_test_and_main_stays_untouched(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, person_client: ClientSource
) -> None:
    src = person_client
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0
    before = main_hash(endpoints), lake_rows(trino_client, src.client_id, "observation_period")

    orphan_period(src, 800001)
    wait_for_cdc(platform, src.client_id)
    failed = runner(contract(platform, src))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "not published" in failed.stdout
    assert "relationships_observation_period_person_id" in failed.stdout
    assert "from_field=999999" in failed.stdout  # the dangling key, named
    after = main_hash(endpoints), lake_rows(trino_client, src.client_id, "observation_period")
    assert after == before
    # Staging keeps the bad build to inspect.
    names = ClientNames(src.client_id)
    staged = trino_client.query(
        f"select person_id from {names.staging_catalog}.{names.lake_schema}.observation_period"
        " where observation_period_id = 800001"
    )
    assert staged == [(999999,)]


def test_a_runner_killed_before_publish_leaves_main_and_the_next_run_publishes(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    head = main_hash(endpoints)
    # The process dies abruptly (no cleanup of any kind) between build and publish;
    # its lock lasts one second, as if its deadline had passed.
    crash = textwrap.dedent("""
        import os, sys
        from clientpipelines.runner import cli, run
        run.Run.publish = lambda self: os._exit(137)
        sys.exit(cli.main(sys.argv[1:]))
    """)
    short_lock = {**contract(platform, src), "RUN_DEADLINE_SECONDS": "1"}
    crashed = runner(short_lock, wrapper=crash)
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    assert "[4/7] dbt build" in crashed.stdout
    assert main_hash(endpoints) == head
    time.sleep(1.5)

    recovered = runner(contract(platform, src))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "broke the lock" in recovered.stdout
    assert_lake_equals_source(platform, src)


def test_nessie_restarting_mid_build_is_retried_and_the_run_publishes(
    platform: Stack, endpoints: Endpoints, cdc_client: ClientSource
) -> None:
    # Nessie goes away while dbt builds (a pod rescheduled): the requests it drops fail
    # their models; the runner re-runs those (dbt retry) instead of failing the run.
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clientpipelines.runner.cli", "run"],
        env={**os.environ, **contract(platform, src)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    restart: threading.Thread | None = None
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if restart is None and "START sql incremental model" in line:
                restart = threading.Thread(
                    target=lambda: (platform.stop_service("nessie"), platform.up(progress=False))
                )
                restart.start()
        code = proc.wait(timeout=600)
    finally:
        proc.kill()
        if restart is not None:
            restart.join(timeout=120)
    output = "".join(lines)
    assert restart is not None, output
    assert "nessie" in platform.running()
    assert code == 0, output
    assert "(dbt retry)" in output
    assert_lake_equals_source(platform, src)


class Continuous:
    """The runner in continuous mode, as a process whose output is read as it comes."""

    def __init__(self, env: dict[str, str], interval: float, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "clientpipelines.runner.cli", "run"),
                *("--continuous", "--interval", str(interval), *extra),
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def batches(self, outcome: str) -> int:
        """How many batches ended with `outcome` (OUTCOMES' words) so far."""
        return sum(1 for line in self.lines if line.startswith(f"summary: {outcome} in"))

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, f"the runner exited ({what}):\n{self.output}"
            assert time.monotonic() < deadline, f"not within {timeout}s: {what}\n{self.output}"
            time.sleep(0.5)


def test_continuous_mode_publishes_only_green_batches_and_stops_on_sigterm(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, person_client: ClientSource
) -> None:
    src = person_client
    names = ClientNames(src.client_id)
    wait_for_cdc(platform, src.client_id)
    runner_proc = Continuous(contract(platform, src), interval=1)
    try:
        runner_proc.wait_until(
            "the snapshot published", lambda: lake_equals_source(platform, src.client_id)
        )
        head = main_hash(endpoints)
        periods = lake_rows(trino_client, src.client_id, "observation_period")
        # Idle: no batch runs while Kafka has nothing new, so main stays where it is.
        time.sleep(3)
        assert main_hash(endpoints) == head

        # A batch with a dangling key fails its test: not published, the runner goes on.
        orphan_period(src, 800001)
        runner_proc.wait_until(
            "a batch refused", lambda: "batch not published (failed)" in runner_proc.output
        )
        assert "relationships_observation_period_person_id" in runner_proc.output
        assert main_hash(endpoints) == head
        assert lake_rows(trino_client, src.client_id, "observation_period") == periods

        # The data fixed at the source: a later batch publishes, with the new changes too.
        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute("delete from observation_period where observation_period_id = 800001")
        SampleData(platform).apply_changes(src.client_id, count=20, seed=5)
        runner_proc.wait_until(
            "the fixed data published", lambda: lake_equals_source(platform, src.client_id)
        )
        assert main_hash(endpoints) != head

        runner_proc.proc.send_signal(signal.SIGTERM)
        code = runner_proc.proc.wait(timeout=300)
        runner_proc.reader.join(timeout=10)
    finally:
        runner_proc.proc.kill()
    output = runner_proc.output
    assert code == 0, output
    assert "SIGTERM: stopping after the batch in progress" in output
    assert "stopped after" in output
    # The batches share one copy of the dbt project: after the first, dbt parses only
    # what changed (it says why when it must parse everything again).
    full_parses = [line for line in output.splitlines() if "Unable to do partial parsing" in line]
    assert len(full_parses) == 1, full_parses
    assert "saved manifest not found" in full_parses[0]
    # A batch uses the count of new changes made before it took the lock when the
    # watermarks are the same, rather than reading Kafka's offsets twice.
    assert "as counted before the lock (watermarks unchanged)" in output
    # Every batch's lock was released; nothing holds the client.
    assert endpoints.nessie().get_reference(names.run_lock_branch) is None


def lock_branch(endpoints: Endpoints, src: ClientSource) -> tuple[NessieClient, Reference]:
    """The client's run-lock branch, created from main as a run creates it."""
    nessie = endpoints.nessie()
    main = nessie.get_reference("main")
    assert main is not None
    return nessie, nessie.create_branch(ClientNames(src.client_id).run_lock_branch, main)


def release_lock(nessie: NessieClient, names: ClientNames) -> None:
    """Delete the client's run-lock branch, if it is there."""
    held = nessie.get_reference(names.run_lock_branch)
    if held is not None:
        nessie.delete_branch(held)


def test_a_lock_abandoned_before_its_holder_was_written_is_broken(
    platform: Stack, endpoints: Endpoints, cdc_client: ClientSource
) -> None:
    # A run that died between creating the lock branch and committing who holds it.
    nessie, _ = lock_branch(endpoints, cdc_client)
    names = ClientNames(cdc_client.client_id)
    wait_for_cdc(platform, cdc_client.client_id)
    result = runner(contract(platform, cdc_client))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "abandoned before it said who held it" in result.stdout
    assert nessie.get_reference(names.run_lock_branch) is None
    assert_lake_equals_source(platform, cdc_client)


def test_a_second_run_is_refused_while_one_holds_the_client(
    platform: Stack, endpoints: Endpoints, cdc_client: ClientSource
) -> None:
    names = ClientNames(cdc_client.client_id)
    nessie, lock = lock_branch(endpoints, cdc_client)
    nessie.commit_namespace(
        lock, "run-lock", json.dumps({"run_id": "other", "expires": time.time() + 600})
    )
    try:
        refused = runner(contract(platform, cdc_client))
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "another run (other) holds" in refused.stdout

        # A run told to wait (a continuous pipeline's requested runs) takes the lock
        # once the holder lets it go, and publishes.
        wait_for_cdc(platform, cdc_client.client_id)

        release = threading.Timer(6.0, lambda: release_lock(nessie, names))
        release.start()
        waited = runner(contract(platform, cdc_client), "--wait-for-lock", "120")
        release.join()
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "waiting up to 120s for it" in waited.stdout
        assert_lake_equals_source(platform, cdc_client)
    finally:
        release_lock(nessie, names)


def test_a_lock_left_by_the_same_continuous_runner_is_broken(
    platform: Stack, endpoints: Endpoints, cdc_client: ClientSource
) -> None:
    """A continuous runner killed mid-batch (OOM) restarts in the same Pod, with the same
    RUN_ID: the lock its previous process left ("<RUN_ID>-<batch>") is its own."""
    names = ClientNames(cdc_client.client_id)
    nessie, lock = lock_branch(endpoints, cdc_client)
    holder = {"run_id": "pod-a-000007", "expires": time.time() + 600}
    nessie.commit_namespace(lock, "run-lock", json.dumps(holder))
    wait_for_cdc(platform, cdc_client.client_id)
    runner_proc = Continuous({**contract(platform, cdc_client), "RUN_ID": "pod-a"}, interval=1)
    try:
        runner_proc.wait_until(
            "the lock broken and a batch published",
            lambda: (
                "left by this runner before it restarted" in runner_proc.output
                and "summary: published" in runner_proc.output
            ),
        )
    finally:
        runner_proc.proc.send_signal(signal.SIGTERM)
        runner_proc.proc.wait(timeout=300)
        release_lock(nessie, names)
    assert_lake_equals_source(platform, cdc_client)


def test_full_reload_gives_the_same_tables(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient
) -> None:
    # Every clinical table: numerics (NUMERIC in Postgres, double in the lake), dates
    # and timestamps read through the postgresql catalog equal the source.
    src = wire_client(
        platform, f"f{uuid.uuid4().hex[:8]}", rows=40, mode="full-reload", tables=CLINICAL_TABLES
    )
    try:
        result = runner(contract(platform, src, "full-reload"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert_lake_equals_source(platform, src)
        SampleData(platform).apply_changes(src.client_id, count=100)
        again = runner(contract(platform, src, "full-reload"))
        assert again.returncode == 0, again.stdout + again.stderr
        assert_lake_equals_source(platform, src)
    finally:
        unwire_client(platform, src.client_id)


def test_runner_refuses_a_bad_client_id(endpoints: Endpoints) -> None:
    good = RunConfig(
        client_id="good",
        ingestion_mode="cdc",
        source_schema="public",
        tables=("provider",),
        trino_host=endpoints.trino_host,
        trino_port=endpoints.trino_port,
        nessie_url=endpoints.nessie_url,
    )
    result = runner(good.to_env(), "--client", "Not_A_Client")
    assert result.returncode == 2
    assert "--client" in result.stderr
    unset = runner({**good.to_env(), "SOURCE_TABLES": ""})
    assert unset.returncode == 2
    assert "--tables: SOURCE_TABLES: required" in unset.stderr


def test_runner_help_documents_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clientpipelines.runner.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for code in ("0", "1", "2", "3", "4"):
        assert f"  {code}  " in out


def test_a_topic_whose_head_expired_is_refused_and_main_never_shrinks(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0
    before = published_state(endpoints, trino_client, src)

    # Someone gives the provider topic a tiny retention: new changes land in a new
    # segment (a segment rolls on the first write after segment.ms) and the broker
    # deletes the older ones, the published watermark's change among them.
    names = ClientNames(src.client_id)
    topic = names.topic("public", "provider")
    ((watermark,),) = trino_client.query(
        f"select max(_partition_offset) from lake.{names.lake_schema}.provider_changes"
    )
    bootstrap = endpoints.kafka_bootstrap
    set_topic_config(bootstrap, topic, {"retention.ms": "1000", "segment.ms": "100"})
    try:
        deadline = time.monotonic() + 90
        for seed in range(100, 200):
            # Gone: the watermark's change and at least one change not yet published.
            if earliest_offset(bootstrap, topic) > watermark + 1:
                break
            assert time.monotonic() < deadline, "the broker never expired the topic's head"
            SampleData(platform).apply_changes(src.client_id, count=5, seed=seed)
            time.sleep(2)
    finally:
        set_topic_config(bootstrap, topic, {"retention.ms": "-1", "segment.ms": None})
    wait_for_cdc(platform, src.client_id)

    # Neither the next run nor a full refresh rebuilds from what is left.
    for extra in ((), ("--full-refresh",)):
        refused = runner(contract(platform, src), *extra)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "refused" in refused.stdout and "its oldest changes are gone" in refused.stdout
        assert published_state(endpoints, trino_client, src) == before

    # The README's recovery: a round trip through full-reload takes a new snapshot.
    set_mode(platform, src, "full-reload")
    set_mode(platform, src, "cdc")
    wait_for_cdc(platform, src.client_id)
    recovered = runner(contract(platform, src))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert_lake_equals_source(platform, src)


def test_a_batch_that_breaks_row_conservation_is_not_published(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0
    before = published_state(endpoints, trino_client, src)
    SampleData(platform).apply_changes(src.client_id, count=30, seed=5)
    wait_for_cdc(platform, src.client_id)
    # A build that loses a row, or duplicates one, on its way to staging after dbt's
    # tests passed (as a faulty merge or a retried write would): the counts say so.
    tampered = textwrap.dedent("""
        import sys
        import os
        from clientpipelines.clients.trino import TrinoLogin
        from clientpipelines.runner import cli, dbt
        fault = sys.argv.pop()  # the statement that breaks staging, given last
        build = dbt.DbtProject.build
        def tampered(self, **kwargs):
            result = build(self, **kwargs)
            v = self.variables
            table = f"{v['staging_catalog']}.{v['lake_schema']}.provider"
            last = f"provider_id = (select max(provider_id) from {table})"
            TrinoLogin.from_env(os.environ).client().query(
                fault % {"table": table, "last": last}
            )
            return result
        dbt.DbtProject.build = tampered
        sys.exit(cli.main(sys.argv[1:]))
    """)
    for fault in (
        "delete from %(table)s where %(last)s",
        "insert into %(table)s select * from %(table)s where %(last)s",
    ):
        broken = runner(contract(platform, src), fault, wrapper=tampered)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "row conservation: provider:" in broken.stdout
        assert "(NOT conserved)" in broken.stdout
        assert published_state(endpoints, trino_client, src) == before
    # The next run rebuilds staging from main and publishes the same batch whole.
    again = runner(contract(platform, src))
    assert again.returncode == 0, again.stdout + again.stderr
    assert_lake_equals_source(platform, src)


def test_elementary_reports_every_run_and_a_report_failure_never_blocks_publishing(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, person_client: ClientSource
) -> None:
    if not DBT_PACKAGES.is_dir():
        pytest.skip(f"Elementary's dbt package is expected in {DBT_PACKAGES} (shared data)")
    src = person_client
    names = ClientNames(src.client_id)
    reports = {
        **contract(platform, src),
        "REPORTS_URI": endpoints.reports,
        "REPORTS_S3_ENDPOINT": endpoints.s3_endpoint,
        "AWS_ACCESS_KEY_ID": endpoints.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": endpoints.s3_secret_key,
        "AWS_DEFAULT_REGION": endpoints.s3_region,
    }
    config = RunConfig.from_env(reports)
    wait_for_cdc(platform, src.client_id)
    packages = ("--packages-dir", str(DBT_PACKAGES))

    first = runner({**reports, "RUN_ID": "first"}, *packages)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "elementary: installed" in first.stdout
    uri = config.report_uri("first")
    assert uri and f"report: {uri}" in first.stdout
    html = s3_object(endpoints, uri)
    assert html and b"elementary" in html.lower()
    # Elementary's results are published with the data: this run's tests are there.
    tests = trino_client.query(
        f"select count(*) from lake.{names.elementary_schema}.elementary_test_results"
    )
    assert tests[0][0] > 0

    # A failing run is reported too (after main was left as it was).
    orphan_period(src, 800002)
    wait_for_cdc(platform, src.client_id)
    with webhook_receiver() as slack:
        failed = runner(
            {**reports, "RUN_ID": "failed", "ELEMENTARY_SLACK_WEBHOOK": slack.url}, *packages
        )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Elementary 0.25.1: its tables are there" in failed.stdout  # built once
    assert s3_object(endpoints, str(config.report_uri("failed")))
    # Elementary's own alert for the failed test reached the (Slack-compatible) webhook.
    assert "Elementary's alerts sent" in failed.stdout
    alerts = json.dumps(slack)
    assert "relationships_observation_period_person_id" in alerts, alerts[:2000]
    assert "secret-token" not in failed.stdout + failed.stderr

    # The report cannot be stored: a warning; the (now good) batch publishes.
    with psycopg.connect(src.dsn(), autocommit=True) as conn:
        conn.execute("delete from observation_period where observation_period_id = 800002")
    wait_for_cdc(platform, src.client_id)
    unstored = runner(
        {**reports, "RUN_ID": "unstored", "REPORTS_URI": "s3://no-such-bucket/reports"},
        *packages,
    )
    assert unstored.returncode == 0, unstored.stdout + unstored.stderr
    assert "warning: the Elementary report failed (publishing is not affected)" in unstored.stdout
    assert "NoSuchBucket" in unstored.stdout
    assert_lake_equals_source(platform, src)


def test_continuous_batches_between_reports_give_elementary_only_their_failures(
    platform: Stack, endpoints: Endpoints, trino_client: TrinoClient, person_client: ClientSource
) -> None:
    """Elementary's uploads cost seconds a build: a continuous batch that makes no
    report skips them when green; a failed one uploads, reports and alerts as ever."""
    if not DBT_PACKAGES.is_dir():
        pytest.skip(f"Elementary's dbt package is expected in {DBT_PACKAGES} (shared data)")
    src = person_client
    names = ClientNames(src.client_id)
    wait_for_cdc(platform, src.client_id)

    def invocations() -> int:  # the builds whose results Elementary has, on main
        ((count,),) = trino_client.query(
            f"select count(*) from lake.{names.elementary_schema}.dbt_invocations"
        )
        return int(count)

    with webhook_receiver() as slack:
        env = {**contract(platform, src), "ELEMENTARY_SLACK_WEBHOOK": slack.url}
        proc = Continuous(env, 1, "--packages-dir", str(DBT_PACKAGES))
        try:
            # The first batch makes a report; the next ones, for ten minutes, do not.
            proc.wait_until("the first batch published", lambda: proc.batches("published") == 1)
            reported = invocations()
            SampleData(platform).apply_changes(src.client_id, count=10, seed=11)
            proc.wait_until("a green batch published", lambda: proc.batches("published") == 2)
            assert lake_equals_source(platform, src.client_id)
            assert invocations() == reported  # it gave Elementary nothing
            assert "Elementary report: not this batch" in proc.output

            orphan_period(src, 800003)
            proc.wait_until("a batch refused", lambda: proc.batches("failed") == 1)
            proc.wait_until("its alerts", lambda: "Elementary's alerts sent" in proc.output)
            # Elementary had the failed batch's results: its alert is that test's.
            alerts = json.dumps(slack)
            assert "*Test:* relationships | *Status:* fail" in alerts, alerts[:2000]
            with psycopg.connect(src.dsn(), autocommit=True) as conn:
                conn.execute("delete from observation_period where observation_period_id = 800003")
            proc.wait_until("the fixed data published", lambda: proc.batches("published") == 3)
            proc.proc.send_signal(signal.SIGTERM)
            code = proc.proc.wait(timeout=300)
            proc.reader.join(timeout=10)
        finally:
            proc.proc.kill()
    assert code == 0, proc.output
    assert "stopped after" in proc.output
    assert lake_equals_source(platform, src.client_id)


def test_reconcile_compares_the_published_tables_with_the_source(
    platform: Stack, cdc_client: ClientSource
) -> None:
    src = cdc_client
    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0

    def reconcile() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clientpipelines.runner.cli", "reconcile"],
            env={**os.environ, **contract(platform, src), "SOURCE_DSN": src.dsn()},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    equal = reconcile()
    assert equal.returncode == 0, equal.stdout + equal.stderr
    assert "provider: source 300 rows, lake 300: equal" in equal.stdout
    assert "care_site: source " in equal.stdout and "DIFFERENT" not in equal.stdout

    # One changed value in the source, not yet published: found, with its bucket.
    with psycopg.connect(src.dsn(), autocommit=True) as conn:
        conn.execute(
            "update provider set npi = 'changed' where provider_id ="
            " (select min(provider_id) from provider)"
        )
    different = reconcile()
    assert different.returncode == 1, different.stdout + different.stderr
    assert "provider: source 300 rows, lake 300: DIFFERENT in 1 of 256 key buckets" in (
        different.stdout
    )
    assert "care_site: source" in different.stdout
    assert src.dsn() not in different.stdout + different.stderr

    wait_for_cdc(platform, src.client_id)
    assert runner(contract(platform, src)).returncode == 0
    assert reconcile().returncode == 0


def test_an_empty_source_table_publishes_empty_then_its_first_rows(
    platform: Stack, trino_client: TrinoClient
) -> None:
    """Debezium makes a table's topic only with the table's first change; the operator
    creates an empty table's topic up front, so runs publish the table empty instead of
    failing on a topic that does not exist, and publish its rows once it has some."""
    client_id = f"r{uuid.uuid4().hex[:8]}"
    src = SampleData(platform).create(client_id, rows=30, seed=5, tables=("person", "death"))
    try:
        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute("create table death_later as select * from death")
            conn.execute("delete from death")
        set_mode(platform, src, "cdc")  # wires it, as the operator does
        wait_for_cdc(platform, client_id)
        first = runner(contract(platform, src))
        assert first.returncode == 0, first.stdout + first.stderr
        assert lake_rows(trino_client, client_id, "death") == []
        assert lake_rows(trino_client, client_id, "person")

        with psycopg.connect(src.dsn(), autocommit=True) as conn:
            conn.execute("insert into death select * from death_later")
            conn.execute("drop table death_later")
        wait_for_cdc(platform, client_id)
        second = runner(contract(platform, src))
        assert second.returncode == 0, second.stdout + second.stderr
        assert lake_rows(trino_client, client_id, "death")
        assert_lake_equals_source(platform, src)
    finally:
        unwire_client(platform, client_id)
