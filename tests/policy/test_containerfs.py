"""A container's root for resolving its allowed executables, while its processes come and go.

A plan built through the root of a process that had exited allowed nothing, and the exec guard then killed
every exec of the container until the next plan (a protect false block: all 300 script runs of one
bench.policy warm-up). The cgroups here are plain directories with a cgroup.procs file: no root needed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.policy.containerfs import (
    _pids_oldest_first,
    container_mount_ns,
    container_root,
    opened_root,
    resolve_in_root,
    runtime_mount_ns,
)
from kubeguard.policy.document import ProcessRule, WorkloadPolicy
from kubeguard.policy.enforce import Container, Enforcer
from kubeguard.policy.execguard import GuardedCgroup

SH = os.path.realpath("/bin/sh")


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def zombie() -> Iterator[subprocess.Popen[bytes]]:
    """A child that has exited and is not reaped yet: /proc/PID/stat is there, /proc/PID/root is not."""
    proc = subprocess.Popen(["true"])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
    assert _state(proc.pid) == "Z"
    yield proc
    proc.wait()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def _cgroup(tmp_path: Path, *procs: subprocess.Popen[bytes]) -> str:
    (tmp_path / "cgroup.procs").write_text("".join(f"{p.pid}\n" for p in procs))
    return str(tmp_path)


def _policy() -> WorkloadPolicy:
    return WorkloadPolicy(WorkloadRef("shop", "Deployment", "web"), mode="protect",
                          processes=[ProcessRule(path=SH)])


def test_an_exited_oldest_process_is_passed_over(tmp_path: Path, zombie: subprocess.Popen[bytes],
                                                 sleeper: subprocess.Popen[bytes]) -> None:
    cgroup = _cgroup(tmp_path, zombie, sleeper)
    assert _pids_oldest_first(cgroup)[0] == zombie.pid  # the case: the oldest process is the one that exited
    assert container_root(cgroup) == f"/proc/{sleeper.pid}/root"
    with opened_root(cgroup) as root:
        assert root is not None
        assert os.stat(root + SH).st_ino == os.stat(SH).st_ino
    container = Container("c1", cgroup, 4242, 0)
    entry = Enforcer._guarded_entry(_policy(), container, True, None)
    assert entry.allowed_inodes == {os.stat(SH).st_ino}
    assert entry.interpreter_inodes == {os.stat(SH).st_ino}


def test_the_opened_root_outlives_its_process(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    cgroup = _cgroup(tmp_path, sleeper)
    with opened_root(cgroup) as root:
        assert root is not None
        sleeper.kill()
        sleeper.wait()
        assert container_root(cgroup) == ""  # the process is gone ...
        assert os.stat(root + SH).st_ino == os.stat(SH).st_ino  # ... its root still resolves
    with opened_root(cgroup) as root:
        assert root is None


def test_a_container_with_no_live_process_keeps_its_executables(tmp_path: Path,
                                                                zombie: subprocess.Popen[bytes]) -> None:
    cgroup = _cgroup(tmp_path, zombie)
    container = Container("c1", cgroup, 4242, 0)
    previous = GuardedCgroup(4242, frozenset({11, 12}), interpreter_inodes=frozenset({12}))
    entry = Enforcer._guarded_entry(_policy(), container, True, previous)
    assert (entry.allowed_inodes, entry.interpreter_inodes) == ({11, 12}, {12})
    first = Enforcer._guarded_entry(_policy(), container, True, None)  # first sight: resolved on the host
    assert first.allowed_inodes == {os.stat(SH).st_ino}
    monitor = Enforcer._guarded_entry(_policy(), container, False, previous)  # zero drift only: no profile
    assert (monitor.allowed_inodes, monitor.profile) == (frozenset(), False)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A container filesystem with Debian's links: /bin -> usr/bin, awk -> /etc/alternatives/awk -> /usr/bin/mawk,
    sh -> /bin/busybox (absolute targets: they must resolve inside this root, not on the host)."""
    root = tmp_path / "rootfs"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/alternatives").mkdir(parents=True)
    for name in ("mawk", "busybox", "app"):
        (root / "usr/bin" / name).write_bytes(b"\x7fELF")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/alternatives/awk").symlink_to("/usr/bin/mawk")
    (root / "usr/bin/awk").symlink_to("/etc/alternatives/awk")
    (root / "usr/bin/sh").symlink_to("/bin/busybox")
    (root / "usr/bin/loop").symlink_to("/usr/bin/loop")
    (root / "usr/bin/up").symlink_to("../../../../../usr/bin/app")
    return root


def test_symlinks_resolve_inside_the_container(image: Path) -> None:
    root = str(image)
    assert resolve_in_root(root, "/usr/bin/awk") == "/usr/bin/mawk"
    assert resolve_in_root(root, "/bin/awk") == "/usr/bin/mawk"
    assert resolve_in_root(root, "/bin/sh") == "/usr/bin/busybox"
    assert resolve_in_root(root, "/usr/bin/up") == "/usr/bin/app"  # `..` stops at the container's root
    assert resolve_in_root(root, "/usr/bin/loop") is None
    assert resolve_in_root(root, "/usr/bin/missing") is None


def test_allowed_executables_behind_absolute_links_are_the_containers(image: Path) -> None:
    policy = WorkloadPolicy(WorkloadRef("shop", "Deployment", "web"), mode="protect",
                            processes=[ProcessRule(path="/usr/bin/awk"), ProcessRule(path="/bin/sh"),
                                       ProcessRule(path="/bin/ap*")])
    ino = {name: (image / "usr/bin" / name).stat().st_ino for name in ("mawk", "busybox", "app")}
    found = Enforcer._profile_inodes(policy, str(image))
    assert found.allowed == {ino["mawk"], ino["busybox"], ino["app"]}
    assert found.interpreters == {ino["busybox"]}  # sh, by name
    # busybox (sh) takes -c for code; so do the real dash, bash and python, not perl (syntax check of a script)
    assert found.inline_code == {ino["busybox"]}
    # busybox is no shell by its real file (which program it runs is argv[0]'s): `sh -e SCRIPT` stays held
    assert found.shells == frozenset()
    (image / "usr/bin/dash").write_bytes(b"\x7fELF")
    (image / "usr/bin/sh").unlink()
    (image / "usr/bin/sh").symlink_to("dash")
    assert Enforcer._profile_inodes(policy, str(image)).shells == {(image / "usr/bin/dash").stat().st_ino}
    denied = WorkloadPolicy(policy.workload, mode="protect",
                            processes=[*policy.processes, ProcessRule(path="/usr/bin/dash", action="deny")])
    found = Enforcer._profile_inodes(denied, str(image))  # a deny rule wins in every set
    assert (image / "usr/bin/dash").stat().st_ino not in found.allowed | found.interpreters | found.shells


def test_the_mount_namespace_comes_from_a_live_process(tmp_path: Path, zombie: subprocess.Popen[bytes],
                                                       sleeper: subprocess.Popen[bytes]) -> None:
    ours = os.stat("/proc/self/ns/mnt").st_ino
    assert container_mount_ns(_cgroup(tmp_path, zombie, sleeper)) == ours  # the zombie has no namespaces
    container = Container("c1", str(tmp_path), 4242, 0)
    assert Enforcer._guarded_entry(_policy(), container, True, None).mount_ns == ours
    assert container_mount_ns(_cgroup(tmp_path, zombie)) == 0
    previous = GuardedCgroup(4242, frozenset({1}), mount_ns=77)
    assert Enforcer._guarded_entry(_policy(), container, True, previous).mount_ns == 77  # kept, as the inodes are
    assert container_mount_ns(str(tmp_path / "gone")) == 0


def test_the_runtime_mount_namespace_is_the_parents_when_it_differs(tmp_path: Path, zombie: subprocess.Popen[bytes],
                                                                    sleeper: subprocess.Popen[bytes]) -> None:
    # the sleeper's parent is this process, in the same mount namespace: unknown (0), so the guard keeps letting
    # other namespaces' execs through; the root test (test_execguard_runtime_root.py) has a real pod's own one
    assert runtime_mount_ns(_cgroup(tmp_path, zombie, sleeper)) == 0
    assert runtime_mount_ns(str(tmp_path / "gone")) == 0
    container = Container("c1", str(tmp_path), 4242, 0)
    previous = GuardedCgroup(4242, frozenset({1}), runtime_mount_ns=78)
    assert Enforcer._guarded_entry(_policy(), container, True, previous).runtime_mount_ns == 78  # kept
