"""Fixtures the integration modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from devstack.controlplane import ControlPlane
from devstack.operator import OperatorProcess, install_crd, running_operator
from devstack.stack import Stack


@pytest.fixture(scope="module")
def crd(kube_api: client.ApiClient) -> None:
    install_crd(kube_api)


@pytest.fixture(scope="module")
def operator(
    crd: None,
    control_plane: ControlPlane,
    platform: Stack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator as a process against the session's control plane and the stack."""
    with running_operator(control_plane, platform, tmp_path_factory.mktemp("operator")) as op:
        yield op
