"""Shared fixtures and the test tiers.

A test's tier follows its folder: tests/unit -> `unit`, tests/integration ->
`integration`, tests/acceptance -> `acceptance`. `pytest -m unit` runs in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from clientpipelines.clients.trino import TrinoClient
from devstack import kubelet
from devstack.controlplane import ControlPlane
from devstack.stack import Endpoints, Stack
from tests.platform_state import credential_sightings, leftovers

TIERS = ("unit", "integration", "acceptance")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A fresh real control plane (etcd, kube-apiserver, kube-controller-manager) per session.

    Its processes die with the test run even if pytest is killed.
    """
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"), die_with_parent=True)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A kubernetes.client.ApiClient authenticated as the control plane's admin."""
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local platform stack, started once per session or reused if already running.

    A stack this fixture started is stopped at the end (its data is kept); one that
    was already running is left running.
    """
    stack = Stack()
    was_running = set(stack.running())
    try:
        stack.up(progress=False)
        yield stack
        # Every test cleans up what it made in every system; what is left is a bug.
        left = {what: names for what, names in leftovers(stack.endpoints()).items() if names}
        assert not left, f"tests left client objects on the platform: {left}"
        # No credential of the session shows in what the product writes or serves
        # (the operators' and runs' logs are under this session's temporary folders).
        logs = sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
        if kubelet._kubelet is not None:
            logs += sorted(kubelet._kubelet.directory.glob("*.log"))
        seen = credential_sightings(stack, logs)
        assert not seen, f"credentials found: {seen}"
    finally:
        # Also when startup failed half-way: nothing this fixture started stays behind.
        if not was_running:
            stack.down()


@pytest.fixture(scope="session")
def endpoints(platform: Stack) -> Endpoints:
    return platform.endpoints()


@pytest.fixture(scope="session")
def trino_client(endpoints: Endpoints) -> TrinoClient:
    return endpoints.trino()
