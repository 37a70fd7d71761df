"""`clientpipelines-runner run --client <id>`: the runner image's entrypoint.

Configuration comes from flags or the environment the CronJob sets; secrets only
from the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from clientpipelines.naming import InvalidClientId, validate_client_id
from clientpipelines.runner.pipeline import EXIT_CONFIG, RunConfig, run

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
    r.add_argument("--client", default=os.environ.get("CLIENT_ID"), help="client id ($CLIENT_ID)")
    r.add_argument("--trino-host", default=os.environ.get("TRINO_HOST", "127.0.0.1"))
    r.add_argument("--trino-port", type=int, default=int(os.environ.get("TRINO_PORT", "8080")))
    r.add_argument(
        "--nessie-url",
        default=os.environ.get("NESSIE_URL"),
        help="Nessie REST API v2 root ($NESSIE_URL)",
    )
    r.add_argument(
        "--mode", default=os.environ.get("INGESTION_MODE", "cdc"), choices=["cdc", "full-reload"]
    )
    r.add_argument("--schema", default=os.environ.get("SOURCE_SCHEMA", "public"))
    r.add_argument("--select", default=os.environ.get("DBT_SELECT"), help="dbt node selection")
    r.add_argument("--project-dir", type=Path, default=_default_project())
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
    args = parser.parse_args(argv)
    try:
        client = validate_client_id(args.client or "")
    except InvalidClientId as exc:
        print(f"error: --client: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.nessie_url:
        print("error: --nessie-url or NESSIE_URL is required", file=sys.stderr)
        return EXIT_CONFIG
    try:
        dbt_vars = json.loads(os.environ.get("DBT_VARS") or "{}")
    except ValueError:
        print("error: DBT_VARS is not JSON", file=sys.stderr)
        return EXIT_CONFIG
    config = RunConfig(
        client_id=client,
        trino_host=args.trino_host,
        trino_port=args.trino_port,
        nessie_url=args.nessie_url,
        dbt_project_dir=args.project_dir,
        ingestion_mode=args.mode,
        source_schema=args.schema,
        dbt_select=args.select,
        dbt_vars=dbt_vars,
        full_refresh=args.full_refresh,
        unit_tests=args.unit_tests,
        break_lock=args.break_lock,
        deadline_seconds=float(os.environ.get("RUN_DEADLINE_SECONDS", "3600")),
    )
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
