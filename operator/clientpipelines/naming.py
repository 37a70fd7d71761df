"""The naming contract: every name derived from a client id, in one place.

The operator and the pipeline runner both import this module, so the connector,
topics, slot, catalogs, branch and CronJob they each touch can never disagree.
A client id is the ClientPipeline's name: a DNS-1123 label (lower-case letters,
digits, '-'), short enough that every derived name fits its system's limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The tightest limit among the derived names: a CronJob's name may have at most
# 52 characters (the controller appends an 11-character suffix to name its Jobs,
# which must stay within 63), and the CronJob is "<id>-pipeline".
CRONJOB_SUFFIX = "-pipeline"
# The Deployment of a continuous-mode pipeline's runner (its Pods' generated names
# are cut to fit by Kubernetes).
CONTINUOUS_SUFFIX = "-continuous"
MAX_CLIENT_ID_LENGTH = 52 - len(CRONJOB_SUFFIX)  # 43

CLIENT_ID_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)

# dbt names Elementary's schema `<target schema>_elementary` (its `+schema: elementary`).
ELEMENTARY_SUFFIX = "_elementary"

# The platform's catalog: Iceberg on the Nessie branch analysts read.
LAKE_CATALOG = "lake"
MAIN_BRANCH = "main"


class InvalidClientId(ValueError):
    """A client id that would break one of the derived names."""


def validate_client_id(client_id: str) -> str:
    """Return `client_id` unchanged, or raise InvalidClientId saying what is wrong."""
    if not client_id:
        raise InvalidClientId("client id is empty")
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidClientId(
            f"client id {client_id!r} has {len(client_id)} characters; at most "
            f"{MAX_CLIENT_ID_LENGTH} fit every derived name (the CronJob "
            f"'<id>{CRONJOB_SUFFIX}' may have 52)"
        )
    if not _CLIENT_ID_RE.match(client_id):
        raise InvalidClientId(
            f"client id {client_id!r} must be a DNS-1123 label starting with a letter: "
            "lower-case letters, digits and '-', not ending with '-'"
        )
    suffix = ELEMENTARY_SUFFIX.replace("_", "-")
    if client_id.endswith(suffix):
        # Its lake schema would be another client's Elementary schema.
        raise InvalidClientId(
            f"client id {client_id!r} may not end with '{suffix}': its schema would be "
            f"the Elementary schema of client {client_id.removesuffix(suffix)!r}"
        )
    return client_id


def sql_identifier(client_id: str) -> str:
    """The client id as a SQL identifier: '-' becomes '_' (acme-health -> acme_health)."""
    return validate_client_id(client_id).replace("-", "_")


@dataclass(frozen=True)
class ClientNames:
    """Every name derived from one client id (see DESIGN.md, "Naming contract")."""

    client_id: str

    def __post_init__(self) -> None:
        validate_client_id(self.client_id)

    @property
    def sql(self) -> str:
        return sql_identifier(self.client_id)

    # Kafka Connect / Debezium
    @property
    def connector(self) -> str:
        return f"{self.client_id}-cdc"

    @property
    def topic_prefix(self) -> str:
        return self.client_id

    def topic(self, schema: str, table: str) -> str:
        return f"{self.topic_prefix}.{schema}.{table}"

    @property
    def signal_topic(self) -> str:
        # Debezium's Kafka signal channel: the operator asks for a table's backfill
        # (an incremental snapshot) here. Two parts, so no table's topic can be it.
        return f"{self.topic_prefix}.signals"

    @property
    def heartbeat_topic(self) -> str:
        # Debezium's default topic.heartbeat.prefix is "__debezium-heartbeat".
        return f"__debezium-heartbeat.{self.topic_prefix}"

    def owns_topic(self, topic: str) -> bool:
        """True for the topics this client's connector writes (client ids contain no dots)."""
        return topic.startswith(f"{self.topic_prefix}.") or topic == self.heartbeat_topic

    # Client Postgres
    @property
    def replication_slot(self) -> str:
        return f"{self.sql}_cdc"

    @property
    def publication(self) -> str:
        return f"{self.sql}_cdc"

    # Trino
    @property
    def source_catalog(self) -> str:
        return f"{self.sql}_src"

    @property
    def cdc_catalog(self) -> str:
        return f"{self.sql}_cdc"

    @property
    def staging_catalog(self) -> str:
        return f"{self.sql}_staging"

    @property
    def lake_schema(self) -> str:
        return self.sql

    @property
    def elementary_schema(self) -> str:
        """Elementary's results: dbt names `+schema: elementary` `<target schema>_elementary`."""
        return f"{self.lake_schema}{ELEMENTARY_SUFFIX}"

    # Nessie
    @property
    def staging_branch(self) -> str:
        return f"{self.client_id}-staging"

    @property
    def run_lock_branch(self) -> str:
        """Held by the pipeline runner while a run is in progress (one run per client)."""
        return f"{self.client_id}-run-lock"

    @property
    def client_catalogs(self) -> tuple[str, ...]:
        """Every catalog the operator may own for the client, whatever its mode."""
        return (self.cdc_catalog, self.staging_catalog, self.source_catalog)

    @property
    def lake_schemas(self) -> tuple[str, ...]:
        """The client's schemas in `lake`: its tables, and Elementary's results."""
        return (self.lake_schema, self.elementary_schema)

    # Kubernetes
    @property
    def cronjob(self) -> str:
        return f"{self.client_id}{CRONJOB_SUFFIX}"

    @property
    def continuous_runner(self) -> str:
        """The Deployment that keeps a continuous-mode pipeline's runner up."""
        return f"{self.client_id}{CONTINUOUS_SUFFIX}"

    @property
    def runner_service_account(self) -> str:
        """The identity the client's runs act as (Trino authenticates its token)."""
        return f"{self.client_id}-runner"

    def runner_principal(self, namespace: str) -> str:
        """The user a run is to Trino: its ServiceAccount token's subject."""
        return f"system:serviceaccount:{namespace}:{self.runner_service_account}"
