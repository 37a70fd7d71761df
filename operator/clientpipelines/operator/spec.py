"""A ClientPipeline's spec, parsed once into a typed value the rest of the operator reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clientpipelines.naming import ClientNames
from clientpipelines.operator.quantity import parse_quantity

# Defaults the CRD also declares; repeated here only for objects stored before a
# default existed (the API server applies the CRD's on every write since).
DEFAULT_DELETION_POLICY = "Retain"


@dataclass(frozen=True)
class SecretRef:
    name: str
    username_key: str = "username"
    password_key: str = "password"  # noqa: S105 - the key name, not a password


@dataclass(frozen=True)
class PipelineSpec:
    """A ClientPipeline's spec, typed, with the API server's defaults applied."""

    client_id: str
    namespace: str
    host: str
    port: int
    database: str
    schema: str
    tables: tuple[str, ...]
    ssl_mode: str
    secret: SecretRef
    mode: str
    snapshot_mode: str
    heartbeat_ms: int
    # Bytes of WAL the slot may hold before ReplicationSlotHealthy turns False
    # (None: the operator's setting).
    max_retained_wal: int | None
    schedule: str
    time_zone: str | None
    # "scheduled" (the CronJob) or "continuous" (a Deployment's runner, CDC only).
    transform_mode: str
    interval_seconds: int
    suspend: bool
    image: str | None  # None: the operator's runner image
    image_pull_policy: str
    resources: dict[str, Any]
    dbt_select: str | None
    dbt_vars: dict[str, Any]
    successful_history: int
    failed_history: int
    active_deadline: int
    deletion_policy: str
    # Trino users who may read the client's published tables (spec.access.readers).
    readers: tuple[str, ...] = ()

    @property
    def names(self) -> ClientNames:
        return ClientNames(self.client_id)

    @property
    def cdc(self) -> bool:
        return self.mode == "cdc"

    @property
    def continuous(self) -> bool:
        return self.transform_mode == "continuous"

    @property
    def deletes_outside_kubernetes(self) -> bool:
        """deletionPolicy Delete: removing the pipeline removes what it made elsewhere."""
        return self.deletion_policy == "Delete"


class InvalidSpec(ValueError):
    """A spec the schema could not catch; retrying will not help."""


def parse_spec(name: str, namespace: str, spec: Mapping[str, Any]) -> PipelineSpec:
    """Type the spec; InvalidSpec names what cannot be read."""
    try:
        pg = spec["source"]["postgres"]
        ingestion = spec.get("ingestion") or {}
        cdc = ingestion.get("cdc") or {}
        transform = spec["transform"]
        dbt = transform.get("dbt") or {}
        ref = pg["credentialsSecretRef"]
        return PipelineSpec(
            client_id=ClientNames(name).client_id,
            namespace=namespace,
            host=pg["host"],
            port=int(pg.get("port", 5432)),
            database=pg["database"],
            schema=pg.get("schema", "public"),
            tables=tuple(pg["tables"]),
            ssl_mode=pg.get("sslMode", "require"),
            secret=SecretRef(
                name=ref["name"],
                username_key=ref.get("usernameKey", "username"),
                password_key=ref.get("passwordKey", "password"),
            ),
            mode=ingestion.get("mode", "cdc"),
            snapshot_mode=cdc.get("snapshotMode", "initial"),
            heartbeat_ms=int(cdc.get("heartbeatIntervalMs", 60000)),
            max_retained_wal=(
                parse_quantity(str(cdc["maxRetainedWal"])) if cdc.get("maxRetainedWal") else None
            ),
            schedule=transform["schedule"],
            time_zone=transform.get("timeZone"),
            transform_mode=transform.get("mode", "scheduled"),
            interval_seconds=int(transform.get("intervalSeconds", 5)),
            suspend=bool(transform.get("suspend", False)),
            image=transform.get("image") or None,
            image_pull_policy=transform.get("imagePullPolicy", "IfNotPresent"),
            resources=dict(transform.get("resources") or {}),
            dbt_select=dbt.get("select"),
            dbt_vars=dict(dbt.get("vars") or {}),
            successful_history=int(transform.get("successfulJobsHistoryLimit", 3)),
            failed_history=int(transform.get("failedJobsHistoryLimit", 3)),
            active_deadline=int(transform.get("activeDeadlineSeconds", 3600)),
            deletion_policy=spec.get("deletionPolicy", DEFAULT_DELETION_POLICY),
            readers=tuple(sorted((spec.get("access") or {}).get("readers") or ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSpec(f"spec cannot be read: {type(exc).__name__}: {exc}") from exc
