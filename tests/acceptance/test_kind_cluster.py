"""The same Kubernetes behaviour on a kind cluster (needs a Docker engine)."""

from __future__ import annotations

import pytest

from devstack.docker import docker_engine_available

pytestmark = pytest.mark.skipif(
    not docker_engine_available(),
    reason="kind needs a running Docker engine (`docker info` failed); "
    "run on a machine with Docker to exercise this tier",
)


def test_kind_cluster_serves_the_api(kind_cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = kind_cluster.kubectl("get", "nodes", "-o", "name")
    assert nodes.strip().startswith("node/")
