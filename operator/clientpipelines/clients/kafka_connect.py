"""Kafka Connect's REST API: connectors, their config, state and tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from clientpipelines.clients._http import RestClient
from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable


@dataclass(frozen=True)
class TaskState:
    id: int
    state: str  # RUNNING, FAILED, PAUSED, UNASSIGNED
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorStatus:
    state: str  # RUNNING, FAILED, PAUSED, STOPPED, UNASSIGNED, RESTARTING
    tasks: list[TaskState] = field(default_factory=list)

    @property
    def failed_tasks(self) -> list[TaskState]:
        return [t for t in self.tasks if t.state == "FAILED"]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ConnectorStatus:
        return cls(
            state=body["connector"]["state"],
            tasks=[
                TaskState(id=int(t["id"]), state=t["state"], trace=t.get("trace"))
                for t in body.get("tasks", [])
            ],
        )


class KafkaConnectClient(RestClient):
    service = "kafka-connect"

    def get_config(self, name: str) -> dict[str, str] | None:
        """The connector's config, or None if there is no such connector."""
        resp = self.request("GET", f"/connectors/{name}/config", allow=(404,))
        if resp.status_code == 404:
            return None
        return {k: str(v) for k, v in resp.json().items()}

    def put_config(self, name: str, config: dict[str, str]) -> None:
        """Create or update the connector (PUT is an upsert in Connect's API).

        Raises Conflict while the worker group rebalances (which every new connector
        causes): Connect answers 409, or 500 when the request timed out behind one.
        """
        try:
            self.request("PUT", f"/connectors/{name}/config", json=config)
        except ServiceUnavailable as exc:
            if exc.status == 500 and "rebalanc" in str(exc).lower():
                raise Conflict(self.service, str(exc).split(": ", 1)[-1], 409) from exc
            raise

    def task_configs(self, name: str) -> list[dict[str, str]]:
        """The config each of the connector's tasks was given ([] if there is none)."""
        resp = self.request("GET", f"/connectors/{name}/tasks", allow=(404,))
        if resp.status_code == 404:
            return []
        return [{k: str(v) for k, v in t.get("config", {}).items()} for t in resp.json()]

    def status(self, name: str) -> ConnectorStatus | None:
        resp = self.request("GET", f"/connectors/{name}/status", allow=(404,))
        if resp.status_code == 404:
            return None
        return ConnectorStatus.from_json(resp.json())

    def delete(self, name: str) -> bool:
        """Delete the connector; False if it was already gone."""
        resp = self.request("DELETE", f"/connectors/{name}", allow=(404,))
        return resp.status_code != 404

    def stop(self, name: str) -> bool:
        """Stop the connector and its tasks (unlike pause, it gives up its resources).

        False if there is no such connector.
        """
        return self.request("PUT", f"/connectors/{name}/stop", allow=(404,)).status_code != 404

    def reset_offsets(self, name: str) -> bool:
        """Forget where the connector was (KIP-875; the connector must be STOPPED).

        Connect keeps a source connector's offsets after the connector is deleted, so a
        connector re-created under the same name would resume from them, skipping the
        snapshot, even though its replication slot was dropped. False if there is no
        such connector.
        """
        resp = self.request("DELETE", f"/connectors/{name}/offsets", allow=(404,))
        return resp.status_code != 404

    def remove(self, name: str, *, stop_timeout: float = 20.0) -> bool:
        """Stop, forget the offsets of, and delete the connector; False if it was gone.

        Each step is safe to repeat, so a remove interrupted anywhere completes on retry.
        """
        status = self.status(name)
        if status is None:
            return False
        if status.state != "STOPPED":
            if not self.stop(name):
                return self._gone_or_too_old(name, "PUT /stop")
            deadline = time.monotonic() + stop_timeout
            while (status := self.status(name)) is not None and status.state != "STOPPED":
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        self.service, f"connector {name} did not stop within {stop_timeout:.0f}s"
                    )
                time.sleep(0.25)
        if not self.reset_offsets(name):
            return self._gone_or_too_old(name, "DELETE /offsets")
        return self.delete(name)

    def _gone_or_too_old(self, name: str, call: str) -> bool:
        """After a 404: False if the connector is gone, else Connect lacks the endpoint."""
        if self.get_config(name) is None:
            return False  # deleted meanwhile (Connect reports a status a little longer)
        raise ServiceError(
            self.service, f"{call} answered 404 for existing connector {name}: needs Connect 3.6+"
        )

    def pause(self, name: str) -> None:
        self.request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self.request("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str) -> None:
        """Restart the connector and all its tasks (a person asked for it)."""
        self.request(
            "POST",
            f"/connectors/{name}/restart",
            params={"includeTasks": "true", "onlyFailed": "false"},
        )

    def restart_failed(self, name: str) -> None:
        """Restart the connector and only its failed tasks."""
        self.request(
            "POST",
            f"/connectors/{name}/restart",
            params={"includeTasks": "true", "onlyFailed": "true"},
        )
