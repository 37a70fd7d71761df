"""`clientpipelines-runner run --client <id>`: the runner image's entrypoint.

What to run comes from the environment the CronJob sets (the run contract,
`clientpipelines.runconfig`); a flag given overrides its variable. Secrets come only
from the environment.
"""

from __future__ import annotations

import time

# Before the imports below: a run's "start" phase counts them.
STARTED = time.monotonic()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from clientpipelines.runconfig import (  # noqa: E402
    ENV,
    MODES,
    RUN_CONTINUOUS_ENV,
    RUN_INTERVAL_ENV,
    RUN_LOCK_WAIT_ENV,
    InvalidRunConfig,
    RunConfig,
)
from clientpipelines.runner.run import (  # noqa: E402
    EXIT_CONFIG,
    RunOptions,
    run,
    run_continuously,
)

EXIT_CODES = """exit codes:
  0  published (or no new changes: nothing to publish)
  1  a model or test failed: main untouched, staging kept to inspect
  2  configuration error
  3  another run holds this client
  4  a service (Trino, Nessie) is unavailable: retry later
"""


def _default_project() -> Path:
    env = os.environ.get("DBT_PROJECT_DIR")
    if env:
        return Path(env)
    # A source checkout: <repo>/dbt beside operator/.
    return Path(__file__).resolve().parents[3] / "dbt"


def contract_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The run contract's flags; returns variable -> flag (for error messages).

    Flags default to None: the contract's variable applies unless a flag is given.
    """
    flag_of: dict[str, str] = {}
    for flag, name, extra in (
        ("--client", "client_id", {}),
        ("--trino-host", "trino_host", {}),
        ("--trino-port", "trino_port", {"type": int}),
        ("--nessie-url", "nessie_url", {}),
        ("--mode", "ingestion_mode", {"choices": MODES}),
        ("--schema", "source_schema", {}),
        ("--tables", "tables", {}),
        ("--select", "dbt_select", {}),
    ):
        parser.add_argument(flag, dest=name, help=f"(${ENV[name]})", **extra)
        flag_of[ENV[name]] = flag
    return flag_of


def main(argv: list[str] | None = None) -> int:
    # The trino client logs at INFO that it has no keyring; the runner's output is
    # its progress lines and dbt's.
    logging.getLogger("trino").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        prog="clientpipelines-runner",
        description="One Write-Audit-Publish run of a client's pipeline.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="reset staging, build and test on it, publish if green",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flag_of = contract_flags(r)
    r.add_argument("--project-dir", type=Path, default=_default_project())
    r.add_argument(
        "--packages-dir",
        type=Path,
        default=os.environ.get("DBT_PACKAGES_DIR") or None,
        help="dbt packages laid out as `dbt deps` does, where dbt Hub is unreachable"
        " ($DBT_PACKAGES_DIR; the image has them installed)",
    )
    r.add_argument("--full-refresh", action="store_true", help="rebuild from every Kafka offset")
    r.add_argument(
        "--unit-tests",
        action="store_true",
        default=os.environ.get("RUN_UNIT_TESTS", "").lower() in ("1", "true", "yes"),
        help="also run the dbt unit tests ($RUN_UNIT_TESTS; off: they test logic, not data)",
    )
    r.add_argument(
        "--break-lock",
        action="store_true",
        help="remove a lock left by a run that no longer exists",
    )
    r.add_argument(
        "--wait-for-lock",
        type=float,
        default=float(os.environ.get(RUN_LOCK_WAIT_ENV) or 0.0),
        metavar="SECONDS",
        help="when another run holds the client, wait up to this long for it (default 0:"
        f" refuse at once, exit 3) (${RUN_LOCK_WAIT_ENV})",
    )
    r.add_argument(
        "--continuous",
        action="store_true",
        default=os.environ.get(RUN_CONTINUOUS_ENV, "").lower() in ("1", "true", "yes"),
        help="stay up and publish micro-batches: a run every --interval seconds that there"
        f" are new changes, until SIGTERM (${RUN_CONTINUOUS_ENV}; CDC only)",
    )
    r.add_argument(
        "--interval",
        type=float,
        default=float(os.environ.get(RUN_INTERVAL_ENV) or 5.0),
        help=f"seconds between micro-batches in continuous mode (${RUN_INTERVAL_ENV})",
    )
    i = sub.add_parser(
        "install-packages",
        help="install the dbt packages into the project and into Elementary's CLI (image build)",
    )
    i.add_argument("--project-dir", type=Path, default=_default_project())
    i.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="copy them from this `dbt deps` layout instead of asking dbt Hub",
    )
    rec = sub.add_parser(
        "reconcile",
        help="compare each published table with the client's source: row counts and content"
        " hashes per key bucket (the source's DSN only from $SOURCE_DSN)",
    )
    rec_flags = contract_flags(rec)
    args = parser.parse_args(argv)
    if args.command == "install-packages":
        return install_packages(args.project_dir, args.source)
    if args.command == "reconcile":
        flag_of = rec_flags
    flags = {name: getattr(args, name) for name in ENV if hasattr(args, name)}
    try:
        config = RunConfig.from_env(os.environ, **flags)
    except InvalidRunConfig as exc:
        where = ", ".join(flag_of.get(v, v) for v in exc.variables)
        print(f"error: {where}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "reconcile":
        from clientpipelines.runner.reconcile import reconcile_client  # noqa: PLC0415

        dsn = os.environ.get("SOURCE_DSN")
        if not dsn:
            print("error: SOURCE_DSN: required (the client's Postgres, read-only)", file=sys.stderr)
            return EXIT_CONFIG
        return reconcile_client(config, dsn)
    options = RunOptions(
        dbt_project_dir=args.project_dir,
        full_refresh=args.full_refresh,
        unit_tests=args.unit_tests,
        break_lock=args.break_lock,
        packages_dir=args.packages_dir,
        lock_wait=max(0.0, args.wait_for_lock),
    )
    if args.continuous:
        if args.interval <= 0:
            print("error: --interval: must be more than 0 seconds", file=sys.stderr)
            return EXIT_CONFIG
        return run_continuously(config, options, interval=args.interval, process_started=STARTED)
    return run(config, options, process_started=STARTED)


def install_packages(project: Path, source: Path | None) -> int:
    """Both dbt projects a run uses get their packages: ours, and the one inside edr."""
    from clientpipelines.runner.dbt import copy_packages, edr_project_dir  # noqa: PLC0415

    for target in (project, edr_project_dir()):
        if source is not None:
            copied = copy_packages(source, target / "dbt_packages")
            print(f"{target}: {', '.join(copied) or 'already installed'}")
            continue
        from dbt.cli.main import dbtRunner  # noqa: PLC0415

        done = dbtRunner().invoke(
            ["deps", "--project-dir", str(target), "--profiles-dir", str(project)]
        )
        if not done.success:
            print(f"error: dbt deps failed in {target}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
