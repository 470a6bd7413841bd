"""No unguarded window when the exec guard's plan changes: new pods appear while a protected pod runs a loop
of execs of a binary outside its profile, their plans written into the running program's maps in place or,
when a plan outgrows the maps, into a new program started and filled before the old one stops; not one of
those execs completes, and each new pod is guarded too. Plan changes in place turn rules on and off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from podlab import Pod, PodLab
from roothelpers import require, wait_reported
from test_short_lived_root import build

from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
SWITCHES = 4
FILLER_CGROUP = 1 << 62  # no such cgroup: entries that only fill the maps
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"


def guarded(pod: Pod, *allowed: str) -> GuardedCgroup:
    return GuardedCgroup(pod.cgroup_id, frozenset(os.stat(path).st_ino for path in allowed))


def wait_kills(guard: ExecGuard, more_than: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while guard.kills <= more_than:
        assert time.monotonic() < deadline, "the exec loop stalled: no kills reported"
        time.sleep(0.05)


def test_new_pods_during_a_blocked_exec_loop(podlab: PodLab) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kgw", dir="/tmp"))
    guard = ExecGuard()
    loop: subprocess.Popen[str] | None = None
    try:
        spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        protected = podlab.pod("looping")
        plan = [guarded(protected, NSENTER, str(spawner))]
        guard.apply(plan)
        loop = protected.popen([str(spawner), "100000000", str(marker), str(markers)], stdout=subprocess.PIPE,
                               text=True)
        wait_kills(guard, 10)  # the loop runs and is being killed
        for switch in range(SWITCHES):
            newcomer = podlab.pod()
            plan = [*plan, guarded(newcomer, NSENTER)]
            # every other switch, a filler cgroup too big for the maps: a new program, else the same one
            padding = [GuardedCgroup(FILLER_CGROUP, frozenset(range(1, 5000 * switch)))] if switch % 2 else []
            before = guard.kills
            old = guard.current
            assert old is not None
            updates = old.updates
            guard.apply(plan + padding)
            if padding:  # a new program for the new plan; the old one stops after it is filled
                assert guard.current is not old and guard.running
            else:
                assert guard.current is old and old.updates == updates + 1 and guard.running
            wait_kills(guard, before)
            assert list(markers.iterdir()) == [], "an exec completed during the switch"
            run = newcomer.run([str(marker), str(markers)])
            assert run.returncode == -signal.SIGKILL and list(markers.iterdir()) == []  # the new pod is guarded
        assert loop.poll() is None, "the exec loop ended early"
        wait_kills(guard, 1000)  # a loop long enough to count (the compiled guard switches in well under a second)
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=30)
        assert list(markers.iterdir()) == []  # 0 completed runs over the whole test
    finally:
        if loop is not None and loop.poll() is None:
            loop.kill()
            loop.wait()
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


def test_a_plan_larger_than_bpftrace_default_maps(podlab: PodLab) -> None:
    """bpftrace's maps hold 4096 keys unless told otherwise; an allowed executable past that (many protected
    containers, or a globbed profile) was silently left out of the map and killed: a false block."""
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        pod = podlab.pod("bigplan")
        true = os.path.realpath(shutil.which("true") or "/usr/bin/true")
        filler = frozenset(range(1, 9001))  # low inode numbers: the program adds them before the real ones
        guard.apply([GuardedCgroup(pod.cgroup_id, filler | {os.stat(NSENTER).st_ino, os.stat(true).st_ino})])
        assert pod.run([true]).returncode == 0
        assert guard.kills == 0
    finally:
        guard.close()


def test_plan_changes_in_place(podlab: PodLab) -> None:
    """One program through plan changes: an executable allowed, then no longer, a cgroup guarded, then not."""
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        first, second = podlab.pod("inplace1"), podlab.pod("inplace2")
        true = os.path.realpath(shutil.which("true") or "/usr/bin/true")
        guard.apply([guarded(first, NSENTER, true)])
        run = guard.current
        assert run is not None and first.run([true]).returncode == 0 and second.run([true]).returncode == 0
        guard.apply([guarded(first, NSENTER)])  # true no longer allowed in the first pod
        assert first.run([true]).returncode == -signal.SIGKILL
        guard.apply([guarded(second, NSENTER)])  # the first pod unguarded, the second guarded
        assert first.run([true]).returncode == 0
        assert second.run([true]).returncode == -signal.SIGKILL
        guard.apply([guarded(second, NSENTER, true), guarded(first, NSENTER)])
        assert second.run([true]).returncode == 0
        assert first.run([true]).returncode == -signal.SIGKILL
        assert guard.current is run and run.updates == 3
        assert wait_reported(lambda: guard.kills, 3, "kills") == 3
    finally:
        guard.close()
