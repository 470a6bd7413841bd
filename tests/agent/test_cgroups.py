"""cgroup path patterns -> container id / pod uid; /proc/PID/cgroup parsing; id -> path resolution."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kubeguard.cluster.cgroups import (
    HOST,
    NEW_ID_INTERVAL,
    CgroupResolver,
    container_id_from_path,
    identity_from_path,
    path_from_proc_cgroup,
    pod_uid_from_path,
)

CID = "3f1c0a9e" * 8
UID = "8d9f4c2e-1b7a-4e3d-9c5f-0a1b2c3d4e5f"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(("path", "cid", "uid"), [
    # cgroupfs driver, v1 or v2, containerd / Docker-shim
    (f"/kubepods/besteffort/pod{UID}/{CID}", CID, UID),
    (f"/kubepods/burstable/pod{UID}/{CID}", CID, UID),
    (f"/kubepods/pod{UID}/{CID}", CID, UID),  # Guaranteed QoS has no class level
    # CRI-O, cgroupfs
    (f"/kubepods/besteffort/pod{UID}/crio-{CID}", CID, UID),
    # systemd driver: containerd, CRI-O, Docker
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
     CID, UID),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{CID}.scope", CID, UID),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope", CID, UID),
    # nested cgroups below the container's own (systemd inside a container, cgroup namespaces)
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope/init.scope", CID, UID),
    # Docker and Podman outside Kubernetes
    (f"/docker/{CID}", CID, None),
    (f"/system.slice/docker-{CID}.scope", CID, None),
    (f"/machine.slice/libpod-{CID}.scope", CID, None),
])
def test_container_paths(path: str, cid: str, uid: str | None) -> None:
    assert container_id_from_path(path) == cid
    assert pod_uid_from_path(path) == uid
    assert identity_from_path(path).container_id == cid


@pytest.mark.parametrize("path", [
    "/",
    "/user.slice/user-0.slice/session-3.scope",
    "/system.slice/containerd.service",
    f"/kubepods/besteffort/pod{UID}",  # the pod-level cgroup itself (pause process parent), no container
    f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-conmon-{CID}.scope",
    "/kubepods/besteffort/podnotauuid/abc123",  # short ids are not container ids
    f"/docker/{CID[:-1]}",  # 63 hex
])
def test_host_and_non_container_paths(path: str) -> None:
    identity = identity_from_path(path)
    assert identity.container_id == HOST
    assert identity.is_host


def test_pod_level_cgroup_still_names_the_pod() -> None:
    assert identity_from_path(f"/kubepods/besteffort/pod{UID}").pod_uid == UID


def test_proc_cgroup_prefers_v2_then_a_v1_container_path() -> None:
    v2 = f"12:pids:/\n1:name=systemd:/\n0::/kubepods/besteffort/pod{UID}/{CID}\n"
    assert path_from_proc_cgroup(v2) == f"/kubepods/besteffort/pod{UID}/{CID}"
    hybrid_v1 = f"9:name=systemd:/\n4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/\n0::/\n"
    assert path_from_proc_cgroup(hybrid_v1) == f"/kubepods/pod{UID}/{CID}"
    host = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n"
    assert path_from_proc_cgroup(host) == "/process_api/abc"
    assert identity_from_path(path_from_proc_cgroup(host)).is_host
    assert path_from_proc_cgroup("garbage\n") == "/"


def test_resolver_walks_a_hierarchy_and_refreshes_on_miss(tmp_path: Path) -> None:
    leaf = tmp_path / "kubepods" / "besteffort" / f"pod{UID}" / CID
    leaf.mkdir(parents=True)
    resolver = CgroupResolver(root=tmp_path, refresh_interval=0.0)
    ino = os.stat(leaf).st_ino
    assert resolver.path(ino) == f"/kubepods/besteffort/pod{UID}/{CID}"
    identity = resolver.identity(ino)
    assert identity is not None and (identity.container_id, identity.pod_uid) == (CID, UID)
    walks = resolver.walks
    assert resolver.identity(ino) == identity
    assert resolver.walks == walks  # cached
    other = tmp_path / "docker" / ("ab" * 32)
    other.mkdir(parents=True)
    assert resolver.path(os.stat(other).st_ino) == f"/docker/{'ab' * 32}"  # new cgroup found by a re-walk
    assert resolver.walks == walks + 1
    assert resolver.path(1 << 60) is None


def test_resolver_rate_limits_walks_on_unknown_ids(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    resolver = CgroupResolver(root=tmp_path, refresh_interval=60.0)
    for unknown in range(10**9, 10**9 + 50):
        assert resolver.path(unknown) is None
    assert resolver.walks == 1


def test_resolver_on_this_host_knows_our_own_cgroup() -> None:
    resolver = CgroupResolver()
    if resolver.root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    own = path_from_proc_cgroup(Path("/proc/self/cgroup").read_text())
    v2_line = [ln for ln in Path("/proc/self/cgroup").read_text().splitlines() if ln.startswith("0::")]
    rel = v2_line[0][3:] if v2_line else own
    ino = os.stat(str(resolver.root) + (rel if rel != "/" else "")).st_ino
    assert resolver.path(ino) == rel


def test_resolver_walks_soon_for_a_cgroup_created_after_its_last_walk(tmp_path: Path) -> None:
    (tmp_path / "kubepods").mkdir()
    resolver = CgroupResolver(root=tmp_path, refresh_interval=60.0)
    assert resolver.path(1 << 62) is None  # a miss: one walk, then the 60 s interval applies
    leaf = tmp_path / "kubepods" / f"pod{UID}" / CID
    leaf.mkdir(parents=True)
    ino = os.stat(leaf).st_ino
    time.sleep(NEW_ID_INTERVAL)
    if ino > max(os.stat(p).st_ino for p in (tmp_path, tmp_path / "kubepods")):  # as kernfs ids always are
        assert resolver.path(ino) == f"/kubepods/pod{UID}/{CID}"
        assert resolver.walks == 2
    else:  # this filesystem reused a lower inode: the ordinary interval applies
        assert resolver.path(ino) is None
        assert resolver.walks == 1
