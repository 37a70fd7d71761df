"""Two operator replicas with kopf peering: one handles the resources, the other takes over."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from kubernetes import client

from devstack.controlplane import ControlPlane
from devstack.operator import OperatorProcess, install_crd, wait_ready
from devstack.paths import REPO_ROOT
from devstack.procs import wait_for
from devstack.stack import Stack
from devstack.wiring import unwire_client
from tests.integration.test_operator import Client

PEERING_CRDS = REPO_ROOT / "operator/clientpipelines/manifests/kopf-peering-crds.yaml"


def test_one_replica_is_active_and_a_standby_takes_over(
    control_plane: ControlPlane, platform: Stack, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    install_crd(kube_api)
    ext = client.ApiextensionsV1Api(kube_api)
    for crd in yaml.safe_load_all(PEERING_CRDS.read_text()):
        try:
            ext.create_custom_resource_definition(crd)
        except client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
    peering = f"peering-{uuid.uuid4().hex[:6]}"
    objects = client.CustomObjectsApi(kube_api)
    wait_for(
        "the peering CRD to be served",
        lambda: _try_create(objects, peering),
        timeout=30,
        interval=0.5,
    )
    namespace = f"peer-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
    )

    replicas = []
    for i in range(2):
        op = OperatorProcess(control_plane, platform, tmp_path / f"replica{i}")
        op.env.update({"PEERING_NAME": peering, "PEERING_LIFETIME_SECONDS": "10"})
        op.start()
        replicas.append(op)
    c = Client(kube_api, platform, namespace)
    try:
        c.apply(tables=["provider"])
        wait_ready(kube_api, namespace, c.id)

        def handled(op: OperatorProcess) -> bool:
            return f"[{namespace}/{c.id}] Creation is processed" in op.log.read_text()

        active = [op for op in replicas if handled(op)]
        assert len(active) == 1, [op.log.read_text()[-2000:] for op in replicas]
        standby = next(op for op in replicas if op is not active[0])

        active[0].kill()
        c.patch({"transform": {"schedule": "7 * * * *"}})
        batch = client.BatchV1Api(kube_api)
        wait_for(
            "the standby to take over and update the CronJob",
            lambda: (
                batch.read_namespaced_cron_job(c.names.cronjob, namespace).spec.schedule
                == "7 * * * *"
            ),
            timeout=120,
        )
        assert f"[{namespace}/{c.id}]" in standby.log.read_text()
        c.delete()
        wait_for("the pipeline to be deleted", lambda: c.get() is None, timeout=90)
    finally:
        for op in replicas:
            op.stop()
        unwire_client(platform, c.id)


def _try_create(objects: client.CustomObjectsApi, name: str) -> bool:
    try:
        objects.create_cluster_custom_object(
            "kopf.dev",
            "v1",
            "clusterkopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}},
        )
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
