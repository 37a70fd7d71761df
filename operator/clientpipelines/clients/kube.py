"""The Kubernetes API, as far as the operator uses it: Secrets, CronJobs, ClientPipelines.

Errors are mapped the way the other clients map theirs: a missing object is None
(or False), a refusal (400/422) is `ServiceError` with its message, a lost race
(409) is `Conflict`, anything else (5xx, no connection) is `ServiceUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.clients.errors import Conflict, ServiceError, ServiceUnavailable
from clientpipelines.manifests import GROUP, JOB_NAME_LABEL, PLURAL, VERSION

SERVICE = "kubernetes"
T = TypeVar("T")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    except ValueError:
        return str(exc.reason)


class KubeClient:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def _call(self, what: str, call: Callable[[], T], *, missing: T) -> T:
        """`call()`, with 404 as `missing` and every other error mapped to ours."""
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return missing
            if exc.status == 409:
                raise Conflict(SERVICE, f"{what}: {_message(exc)}", 409) from exc
            if exc.status in (400, 422):
                raise ServiceError(SERVICE, f"{what}: {_message(exc)}", exc.status) from exc
            raise ServiceUnavailable(SERVICE, f"{what}: HTTP {exc.status}", exc.status) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ServiceUnavailable(SERVICE, f"{what}: {type(exc).__name__}") from exc

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))

    # -- Secrets ------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Secret as plain JSON, through the client's generic request path.

        Not CoreV1Api: that class imports the models of the whole core API, about
        80 MB of the operator's memory (kubernetes 37), for this one read.
        """

        def get() -> dict[str, Any]:
            request = self.api.param_serialize(
                method="GET",
                resource_path="/api/v1/namespaces/{namespace}/secrets/{name}",
                path_params={"namespace": namespace, "name": name},
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request)
            response.read()
            body: Any = self.api.response_deserialize(response, {"200": "object"}).data
            return dict(body)

        return self._call(f"reading Secret {namespace}/{name}", get, missing=None)

    def termination_messages(self, namespace: str, job: str) -> list[str]:
        """The termination messages of a Job's Pods' containers (the kubelet's copies)."""

        def get() -> list[str]:
            request = self.api.param_serialize(
                method="GET",
                resource_path="/api/v1/namespaces/{namespace}/pods",
                path_params={"namespace": namespace},
                query_params=[("labelSelector", f"{JOB_NAME_LABEL}={job}")],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request)
            response.read()
            body: Any = self.api.response_deserialize(response, {"200": "object"}).data
            return [
                str(terminated["message"])
                for pod in body.get("items") or []
                for status in (pod.get("status") or {}).get("containerStatuses") or []
                if (terminated := (status.get("state") or {}).get("terminated") or {}).get(
                    "message"
                )
            ]

        return self._call(f"listing the Pods of Job {namespace}/{job}", get, missing=[])

    # -- ServiceAccounts (a client's runs act as one) -------------------------------------------

    def _core(self, method: str, path: str, params: dict[str, str], body: Any = None) -> Any:
        """One call of the core API through the generic request path (see read_secret)."""
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            path_params=params,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()
        return self.api.response_deserialize(
            response, {"200": "object", "201": "object", "202": "object"}
        ).data

    def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        path = "/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        found = self._call(
            f"reading ServiceAccount {name}",
            lambda: self._core("GET", path, {"namespace": namespace, "name": name}),
            missing=None,
        )
        return None if found is None else dict(found)

    def create_service_account(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        path = "/api/v1/namespaces/{namespace}/serviceaccounts"
        self._call(
            f"creating ServiceAccount {meta['name']}",
            lambda: self._core("POST", path, {"namespace": meta["namespace"]}, body),
            missing=None,
        )

    # -- CronJobs -----------------------------------------------------------------------------

    def get_cronjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        batch = client.BatchV1Api(self.api)
        live = self._call(
            f"reading CronJob {name}",
            lambda: batch.read_namespaced_cron_job(name, namespace),
            missing=None,
        )
        return None if live is None else self._plain(live)

    def create_cronjob(self, body: dict[str, Any]) -> None:
        batch = client.BatchV1Api(self.api)
        meta = body["metadata"]
        self._call(
            f"creating CronJob {meta['name']}",
            lambda: batch.create_namespaced_cron_job(meta["namespace"], body),  # type: ignore[arg-type]
            missing=None,
        )

    def replace_cronjob(self, body: dict[str, Any], resource_version: str) -> None:
        batch = client.BatchV1Api(self.api)
        meta = body["metadata"]
        body = {**body, "metadata": {**meta, "resourceVersion": resource_version}}
        self._call(
            f"updating CronJob {meta['name']}",
            lambda: batch.replace_namespaced_cron_job(meta["name"], meta["namespace"], body),  # type: ignore[arg-type]
            missing=None,
        )

    def delete_cronjob(self, namespace: str, name: str) -> bool:
        """Delete the CronJob once its Jobs and their Pods are gone (foreground); False if
        it was gone already."""
        batch = client.BatchV1Api(self.api)
        return self._call(
            f"deleting CronJob {name}",
            lambda: bool(
                batch.delete_namespaced_cron_job(name, namespace, propagation_policy="Foreground")
                or True
            ),
            missing=False,
        )

    # -- Deployments (a continuous-mode pipeline's runner) --------------------------------------
    # Through the generic request path: AppsV1Api would load the apps API's models.

    _DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._call(
            f"reading Deployment {name}",
            lambda: self._core(
                "GET", self._DEPLOYMENTS + "/{name}", {"namespace": namespace, "name": name}
            ),
            missing=None,
        )
        return None if found is None else dict(found)

    def create_deployment(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self._call(
            f"creating Deployment {meta['name']}",
            lambda: self._core("POST", self._DEPLOYMENTS, {"namespace": meta["namespace"]}, body),
            missing=None,
        )

    def replace_deployment(self, body: dict[str, Any], resource_version: str) -> None:
        meta = body["metadata"]
        body = {**body, "metadata": {**meta, "resourceVersion": resource_version}}
        params = {"namespace": meta["namespace"], "name": meta["name"]}
        self._call(
            f"updating Deployment {meta['name']}",
            lambda: self._core("PUT", self._DEPLOYMENTS + "/{name}", params, body),
            missing=None,
        )

    def delete_deployment(self, namespace: str, name: str) -> bool:
        """Delete the Deployment once its Pods are gone (foreground: each runner gets its
        grace period to finish its batch); False if it was gone already."""
        body = {"propagationPolicy": "Foreground"}
        params = {"namespace": namespace, "name": name}
        return self._call(
            f"deleting Deployment {name}",
            lambda: bool(self._core("DELETE", self._DEPLOYMENTS + "/{name}", params, body) or True),
            missing=False,
        )

    # -- Jobs ------------------------------------------------------------------------------------

    def create_job(self, body: dict[str, Any]) -> bool:
        """Create the Job; False if a Job of that name exists already (made before)."""
        batch = client.BatchV1Api(self.api)
        meta = body["metadata"]
        try:
            self._call(
                f"creating Job {meta['name']}",
                lambda: batch.create_namespaced_job(meta["namespace"], body),  # type: ignore[arg-type]
                missing=None,
            )
        except Conflict:
            return False
        return True

    # -- ClientPipelines ------------------------------------------------------------------------

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        objects = client.CustomObjectsApi(self.api)
        got = self._call(
            f"reading ClientPipeline {namespace}/{name}",
            lambda: objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
            missing=None,
        )
        return got if isinstance(got, dict) else None

    def remove_pipeline_annotation(self, namespace: str, name: str, key: str, value: str) -> None:
        """Remove the annotation if it still has `value`. A newer request made meanwhile
        stays: the JSON patch's test op fails (422), which is not an error once a
        fresh read shows the annotation no longer holds `value`."""
        objects = client.CustomObjectsApi(self.api)
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            self._call(
                f"removing annotation {key} of ClientPipeline {namespace}/{name}",
                # The client sends merge-patch unless told: a list body needs json-patch.
                lambda: objects.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    patch,
                    _content_type="application/json-patch+json",
                ),
                missing=None,
            )
        except ServiceError as exc:
            if exc.status != 422:
                raise
            current = self.get_pipeline(namespace, name)
            annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(key) == value:
                raise

    def patch_pipeline_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the ClientPipeline's status; False if the object is gone."""
        objects = client.CustomObjectsApi(self.api)
        return self._call(
            f"writing the status of ClientPipeline {namespace}/{name}",
            lambda: bool(
                objects.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, {"status": status}
                )
            ),
            missing=False,
        )
