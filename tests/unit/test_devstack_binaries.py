from __future__ import annotations

from devstack.binaries import _version_ldflags, kubernetes_build


def test_version_is_stamped_into_every_version_package() -> None:
    flags = _version_ldflags(["k8s.io/component-base/version"], "v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMajor=1" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags


def test_binaries_are_cached_under_their_version() -> None:
    spec = kubernetes_build()
    assert spec.out_dir.name.startswith(f"kubernetes-{spec.version}-")
    assert set(spec.paths()) == {"kube-apiserver", "kube-controller-manager", "kubectl"}
