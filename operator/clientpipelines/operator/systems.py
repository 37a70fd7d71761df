"""The external systems one operator process talks to, and a pipeline's credentials."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from kubernetes import client

from clientpipelines.clients.errors import ServiceUnavailable
from clientpipelines.clients.kafka import KafkaTopics
from clientpipelines.clients.kafka_connect import KafkaConnectClient
from clientpipelines.clients.kube import KubeClient
from clientpipelines.clients.nessie import NessieClient
from clientpipelines.clients.postgres import PostgresLogin, SourcePostgres
from clientpipelines.clients.trino import TrinoClient
from clientpipelines.operator.settings import Settings
from clientpipelines.operator.spec import PipelineSpec


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    version: str  # the Secret's resourceVersion: changes when it is rotated

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, version={self.version!r})"


class SecretMissing(Exception):
    """The credentials Secret (or one of its keys) is not there."""


@dataclass
class Systems:
    """One client per external system, built once from the settings."""

    settings: Settings
    connect: KafkaConnectClient
    kafka: KafkaTopics
    nessie: NessieClient
    trino: TrinoClient
    # None where parts are wired without a control plane (devstack's runner tests).
    kube: KubeClient | None

    @classmethod
    def from_settings(cls, settings: Settings, api: client.ApiClient | None) -> Systems:
        return cls(
            settings=settings,
            connect=KafkaConnectClient(settings.connect_url),
            kafka=KafkaTopics(settings.kafka_bootstrap),
            nessie=NessieClient(settings.nessie_url),
            trino=TrinoClient(settings.trino_host, settings.trino_port, user=settings.trino_user),
            kube=KubeClient(api) if api is not None else None,
        )

    def kubernetes(self) -> KubeClient:
        if self.kube is None:
            raise ServiceUnavailable("kubernetes", "no Kubernetes API client configured")
        return self.kube

    def source(self, spec: PipelineSpec, creds: Credentials) -> SourcePostgres:
        return SourcePostgres(
            PostgresLogin(
                host=spec.host,
                port=spec.port,
                database=spec.database,
                username=creds.username,
                password=creds.password,
                sslmode=spec.ssl_mode,
            )
        )

    def read_credentials(self, spec: PipelineSpec) -> Credentials:
        """The source login from the Secret `spec` references; SecretMissing says what lacks."""
        where = f"Secret {spec.namespace}/{spec.secret.name}"
        secret = self.kubernetes().read_secret(spec.namespace, spec.secret.name)
        if secret is None:
            raise SecretMissing(f"{where} (credentialsSecretRef) not found")
        data = secret.get("data") or {}
        keys = (spec.secret.username_key, spec.secret.password_key)
        missing = [k for k in keys if k not in data]
        if missing:
            raise SecretMissing(f"{where} lacks key(s) {', '.join(missing)}")
        return Credentials(
            username=base64.b64decode(data[spec.secret.username_key]).decode(),
            password=base64.b64decode(data[spec.secret.password_key]).decode(),
            version=str((secret.get("metadata") or {}).get("resourceVersion", "")),
        )
