"""Starting, stopping and restarting a control plane: no orphans, nothing lost."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config

from devstack import procs
from devstack.controlplane import ControlPlane


def test_stop_leaves_no_process_and_restart_keeps_data(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "cp", die_with_parent=True)
    try:
        cp.start()
        pids = cp.pids()
        assert all(pids.values()), pids

        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(
            "default",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"k": "v"}),
        )
        api.close()

        # Starting again while it runs reuses every process.
        cp.start()
        assert cp.pids() == pids

        assert cp.stop() == ["kube-controller-manager", "kube-apiserver", "etcd"]
        assert not any(procs.pid_alive(pid) for pid in pids.values() if pid)
        assert not cp.is_ready()

        cp.start()
        assert cp.is_ready()
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        assert client.CoreV1Api(api).read_namespaced_config_map("kept", "default").data == {
            "k": "v"
        }
        api.close()
    finally:
        cp.stop()
    assert all(pid is None for pid in cp.pids().values())
