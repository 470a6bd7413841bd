"""The container runtime's own exec into a protected container is not the container's (#13). runc 1.4 starts
`runc exec` processes (kubectl exec, exec probes) directly in the container's cgroup (clone3 CLONE_INTO_CGROUP),
and they exec the host's runc binary there before joining the container's namespaces: judged by the profile,
every probe of a protected container would be killed (NeuVector #2696). The exec guard leaves alone an exec in
a mount namespace other than the container's that belongs to the initial user namespace (the host's, where the
runtime runs) and is the runtime's: the mount namespace of the process that started the container (its shim).
What then runs in the container's mount namespace is judged as before, and so is anything in a mount namespace
the container made itself: inside a user namespace, or (privileged) in the initial one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from podlab import PodLab
from roothelpers import require, wait_reported

from kubeguard.policy.containerfs import container_mount_ns, runtime_mount_ns
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
SH = os.path.realpath("/bin/sh")


def test_runtime_exec_from_the_host_mount_namespace_is_not_judged(podlab: PodLab) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        pod = podlab.pod("runtime", mount_ns=True)
        sleeper = pod.popen(["sleep", "600"])  # the container's first process: its mount namespace is known
        pod_ns = os.stat(pod.mount_ns).st_ino
        assert pod_ns != os.stat("/proc/self/ns/mnt").st_ino
        procs = pod.cgroup_v2 / "cgroup.procs"
        deadline = time.monotonic() + 60
        while container_mount_ns(str(pod.cgroup_v2)) != pod_ns:  # until sleep runs in the pod's namespace
            assert sleeper.poll() is None and time.monotonic() < deadline, "the pod's first process did not start"
            time.sleep(0.01)
        allowed = frozenset(os.stat(p).st_ino for p in (NSENTER, UNSHARE, SH))
        runtime_ns = runtime_mount_ns(str(pod.cgroup_v2))  # the pod's starter (this test) is its runtime
        assert runtime_ns == os.stat("/proc/self/ns/mnt").st_ino
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed, mount_ns=container_mount_ns(str(pod.cgroup_v2)),
                                   runtime_mount_ns=runtime_ns)])
        # in the pod's mount namespace: judged by the profile
        assert pod.run([TRUE]).returncode == -signal.SIGKILL
        # the runtime's exec: born in the cgroup from the host's mount namespace (as runc init is)
        runtime = subprocess.run([SH, "-c", f'echo $$ > {procs} && exec "$@"', "kg-runtime", TRUE], timeout=60)
        assert runtime.returncode == 0
        # ... which then joins the pod's mount namespace and execs the command: judged again
        joined = subprocess.run([SH, "-c", f'echo $$ > {procs} && exec "$@"', "kg-runtime", NSENTER,
                                 f"--mount={pod.mount_ns}", "--", TRUE], timeout=60)
        assert joined.returncode == -signal.SIGKILL
        # a mount namespace of the container's own making, in a user namespace of its own: still the container's
        assert pod.run([UNSHARE, "--user", "--map-root-user", "--mount", TRUE]).returncode == -signal.SIGKILL
        # ... and one made with CAP_SYS_ADMIN in the initial user namespace (a privileged container's unshare -m):
        # not the runtime's either
        assert pod.run([UNSHARE, "--mount", TRUE]).returncode == -signal.SIGKILL
        assert wait_reported(lambda: guard.kills, 4, "kills") == 4  # reported through the answerer, after the kills
    finally:
        guard.close()


def test_without_its_mount_namespace_every_exec_in_the_cgroup_is_judged(podlab: PodLab) -> None:
    """A container whose mount namespace is unknown (no live process at plan time), or one that shares the
    host's (the lab's plain pods): nothing is exempt."""
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        pod = podlab.pod("shared-ns")
        procs = pod.cgroup_v2 / "cgroup.procs"
        allowed = frozenset(os.stat(p).st_ino for p in (NSENTER, SH))
        for mount_ns in (0, os.stat("/proc/self/ns/mnt").st_ino):
            guard.apply([GuardedCgroup(pod.cgroup_id, allowed, mount_ns=mount_ns)])
            runtime = subprocess.run([SH, "-c", f'echo $$ > {procs} && exec "$@"', "kg-runtime", TRUE], timeout=60)
            assert runtime.returncode == -signal.SIGKILL, mount_ns
    finally:
        guard.close()
