"""The exec guard's processes go away with the agent (#13): the script answerer and the guard program are
ended by `ExecGuard.close()`, and when the agent is killed (SIGKILL, no close) the answerer dies with it
(PR_SET_PDEATHSIG) and the program exits when its answerer does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require, wait_reported

from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
REPO = Path(__file__).resolve().parents[3]
# an agent that owns an exec guard (a cgroup id no container has: nothing is held, the processes run)
AGENT = """import sys
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup
guard = ExecGuard()
guard.apply([GuardedCgroup(1, profile=False)])
assert guard.answerer is not None and guard.current is not None
print(guard.answerer.pid, guard.current.proc.pid, flush=True)
sys.stdin.read()
"""


def wait_for(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Whether `pid` has exited (no process, or a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_close_ends_both_processes() -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        guard.apply([GuardedCgroup(1, profile=False)])
        assert guard.running and guard.answerer is not None and guard.current is not None
        answerer, program = guard.answerer, guard.current.proc
        guard.apply([GuardedCgroup(2, profile=False)])  # written in place: the same program
        assert guard.current.proc is program and guard.current.updates == 1
        # a plan too big for its maps: a new program, the same answerer
        guard.apply([GuardedCgroup(3, frozenset(range(1, 5000)), profile=False)])
        assert guard.answerer is answerer and guard.current.proc is not program and program.poll() is not None
        program = guard.current.proc
    finally:
        guard.close()
    assert answerer.poll() == 0 and program.poll() is not None and not guard.running


def test_killed_agent_leaves_no_answerer_nor_program() -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *sys.path])}
    agent = subprocess.Popen([sys.executable, "-c", AGENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert agent.stdout is not None
        first = agent.stdout.readline()
        assert first, "the agent's exec guard did not start"
        answerer, program = (int(pid) for pid in first.split())
        assert not gone(answerer) and not gone(program)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        wait_for("the answerer to exit with the agent", lambda: gone(answerer))
        wait_for("the guard program to exit with its answerer", lambda: gone(program))
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_guard_that_exited_is_started_again_for_the_same_plan(podlab: PodLab) -> None:
    """The enforcer applies the same plan every look: a killed program (or answerer) comes back then, instead of
    leaving the containers unguarded (program) or every interpreter stopped for good (answerer)."""
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    guard = ExecGuard()
    try:
        pod = podlab.pod("restart")
        true = os.path.realpath(shutil.which("true") or "/usr/bin/true")
        plan = [GuardedCgroup(pod.cgroup_id, frozenset({os.stat(NSENTER).st_ino}))]
        guard.apply(plan)
        for number, victim in enumerate(("program", "answerer"), 1):
            assert guard.current is not None and guard.answerer is not None
            proc = guard.current.proc if victim == "program" else guard.answerer
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 60
            while guard.running:  # the program exits with its answerer
                assert time.monotonic() < deadline
                time.sleep(0.05)
            guard.apply(plan)  # the enforcer's next look, same plan
            assert guard.running, victim
            assert pod.run([true]).returncode == -signal.SIGKILL, victim
            assert wait_reported(lambda: guard.kills, number, "kills") == number  # read before the next victim
        assert guard.restarts == 2
    finally:
        guard.close()
