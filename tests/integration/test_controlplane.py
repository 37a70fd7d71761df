"""The local control plane is a real Kubernetes API with the controllers we rely on."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from devstack.binaries import KUBERNETES_VERSION
from devstack.controlplane import ControlPlane
from devstack.procs import wait_for

GROUP = "probe.clientpipelines.test"


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_server_reports_the_pinned_version(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == KUBERNETES_VERSION
    assert (info.major, info.minor) == tuple(KUBERNETES_VERSION.lstrip("v").split(".")[:2])


def test_anonymous_and_unbound_users_are_refused(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    # Authentication is real: a request without a client certificate is anonymous
    # and RBAC refuses it.
    ctx = ssl.create_default_context(cafile=str(control_plane.directory / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{control_plane.server}/api/v1/namespaces", context=ctx)
    assert err.value.code in (401, 403)

    # Authorization is real: a ServiceAccount with no binding may not list pods...
    user = f"system:serviceaccount:{namespace}:nobody"
    review = client.AuthorizationV1Api(kube_api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="list", resource="pods"
                ),
            )
        )
    )
    assert review.status.allowed is False
    # ...until a RoleBinding grants it.
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="User", name=user, api_group="rbac.authorization.k8s.io")
            ],
        ),
    )
    review = client.AuthorizationV1Api(kube_api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="list", resource="pods"
                ),
            )
        )
    )
    assert review.status.allowed is True


def test_custom_resource_lifecycle(kube_api: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"widgets.{GROUP}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=GROUP,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(
                plural="widgets", singular="widget", kind="Widget"
            ),
            versions=[
                client.V1CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=client.V1CustomResourceValidation(
                        open_apiv3_schema=client.V1JSONSchemaProps(
                            type="object",
                            properties={
                                "spec": client.V1JSONSchemaProps(
                                    type="object",
                                    properties={
                                        "size": client.V1JSONSchemaProps(type="integer", minimum=1)
                                    },
                                )
                            },
                        )
                    ),
                )
            ],
        ),
    )
    ext.create_custom_resource_definition(crd)
    try:
        wait_for(
            "the CRD to be Established",
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (
                    ext.read_custom_resource_definition(crd.metadata.name).status.conditions or []
                )
            ),
            timeout=30,
            interval=0.2,
        )
        objs = client.CustomObjectsApi(kube_api)
        args = (GROUP, "v1", namespace, "widgets")
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        }
        # The schema is enforced by the API server itself.
        with pytest.raises(ApiException) as bad:
            objs.create_namespaced_custom_object(
                *args, {**body, "metadata": {"name": "bad"}, "spec": {"size": 0}}
            )
        assert bad.value.status == 422
        assert "spec.size" in bad.value.body

        wait_for(
            "the new resource to be served",
            lambda: _try(lambda: objs.create_namespaced_custom_object(*args, body)),
            timeout=30,
            interval=0.2,
        )
        assert objs.get_namespaced_custom_object(*args, "w")["spec"]["size"] == 1
        objs.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 3}})
        assert objs.get_namespaced_custom_object(*args, "w")["spec"]["size"] == 3
        objs.delete_namespaced_custom_object(*args, "w")
        with pytest.raises(ApiException) as gone:
            objs.get_namespaced_custom_object(*args, "w")
        assert gone.value.status == 404
    finally:
        ext.delete_custom_resource_definition(crd.metadata.name)


def _try(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_cronjob_creates_a_job_and_garbage_collector_removes_it(
    kube_api: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(kube_api)
    cron = client.V1CronJob(
        metadata=client.V1ObjectMeta(name="tick"),
        spec=client.V1CronJobSpec(
            schedule="* * * * *",
            job_template=client.V1JobTemplateSpec(
                spec=client.V1JobSpec(
                    template=client.V1PodTemplateSpec(
                        spec=client.V1PodSpec(
                            restart_policy="Never",
                            containers=[
                                client.V1Container(name="tick", image="busybox", command=["true"])
                            ],
                        )
                    )
                )
            ),
        ),
    )
    created = batch.create_namespaced_cron_job(namespace, cron)

    def jobs() -> list[client.V1Job]:
        return list(batch.list_namespaced_job(namespace).items)

    found = wait_for("the cronjob controller to create a Job", jobs, timeout=75)
    job = found[0]
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.uid) == ("CronJob", created.metadata.uid)

    # The job controller runs too: it creates the Job's Pod (Pending: no kubelet here).
    core = client.CoreV1Api(kube_api)
    wait_for(
        "the job controller to create a Pod",
        lambda: (
            core.list_namespaced_pod(
                namespace, label_selector=f"job-name={job.metadata.name}"
            ).items
        ),
        timeout=30,
    )

    batch.delete_namespaced_cron_job("tick", namespace, propagation_policy="Background")
    wait_for("the garbage collector to delete the Job", lambda: not jobs(), timeout=60)


def test_namespace_controller_finalizes_deleted_namespaces(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"gone-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
    )
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the namespace controller to remove the namespace", gone, timeout=60)
