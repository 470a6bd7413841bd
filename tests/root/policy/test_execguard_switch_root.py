"""No unguarded window when the exec guard's plan changes: new pods appear (each a new guard program,
started and attached before the old one stops) while a protected pod runs a loop of execs of a binary
outside its profile; not one of those execs completes, and each new pod is guarded too."""

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
from roothelpers import require
from test_short_lived_root import build

from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

pytestmark = pytest.mark.root
SWITCHES = 4
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
        for _ in range(SWITCHES):
            newcomer = podlab.pod()
            plan = [*plan, guarded(newcomer, NSENTER)]
            before = guard.kills
            old = guard.current
            guard.apply(plan)  # a new program for the new plan; the old one stops after it is attached
            assert guard.current is not old and guard.running
            wait_kills(guard, before)
            assert list(markers.iterdir()) == [], "an exec completed during the switch"
            run = newcomer.run([str(marker), str(markers)])
            assert run.returncode == -signal.SIGKILL and list(markers.iterdir()) == []  # the new pod is guarded
        assert loop.poll() is None, "the exec loop ended early"
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=30)
        assert list(markers.iterdir()) == []  # 0 completed runs over the whole test
        assert guard.kills > 1000, guard.kills
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
