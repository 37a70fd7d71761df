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
from clientpipelines.manifests import LABEL_CLIENT
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


class CredentialsRefused(Exception):
    """The Secret is not this client's, or its values are unsafe: nothing may use it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def unsafe_credential(value: str) -> str | None:
    """Why a credential value must not reach SQL or a connector config, or None."""
    if "${" in value:
        # Trino expands ${ENV:...} in catalog properties; Kafka Connect expands
        # ${provider:...} config references: a value could read the platform's secrets.
        return "contains '${'"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    return None


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
            nessie=NessieClient(settings.nessie_url, token_file=settings.nessie_token_file),
            trino=settings.trino_login().client(),
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
        meta = secret.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_CLIENT)
        if owner != spec.client_id:
            # Any Secret of the namespace could otherwise be sent to any host.
            raise CredentialsRefused(
                "SecretNotAllowed",
                f"{where} is not labelled {LABEL_CLIENT}={spec.client_id}"
                + (f" (it is labelled for {owner})" if owner else ""),
            )
        data = secret.get("data") or {}
        keys = (spec.secret.username_key, spec.secret.password_key)
        missing = [k for k in keys if k not in data]
        if missing:
            raise SecretMissing(f"{where} lacks key(s) {', '.join(missing)}")
        values = {k: base64.b64decode(data[k]).decode(errors="replace") for k in keys}
        for key, value in values.items():
            why = unsafe_credential(value)
            if why:  # the message names the key, never the value
                raise CredentialsRefused("InvalidCredentials", f"{where} key {key} {why}")
        return Credentials(
            username=values[spec.secret.username_key],
            password=values[spec.secret.password_key],
            version=str(meta.get("resourceVersion", "")),
        )
