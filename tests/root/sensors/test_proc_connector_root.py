"""The CN_PROC fallback sensor on real processes: exec (with /proc details), fork, exit, uid, ptrace."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from podlab import PodLab
from sensorlog import EventLog, run_sensor

from conftest import need_podlab, need_root
from kubeguard.sensors.proc import ProcConnectorSensor

PY = sys.executable
HOLD = "import sys, time; time.sleep(0.5)"  # long enough for /proc to be read after the exec


@pytest.fixture(scope="module")
def log() -> Iterator[EventLog]:
    need_root("the netlink proc connector")
    yield from run_sensor(ProcConnectorSensor())


def test_exec_reads_args_exe_cwd_from_proc_and_exit(log: EventLog, tmp_path: Path) -> None:
    tag = "kgs" + secrets.token_hex(4)
    proc = subprocess.run([PY, "-c", HOLD + "; sys.exit(5)", tag], cwd=tmp_path)
    assert proc.returncode == 5
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args", "").endswith(tag))
    assert ev["proc.exepath"] == os.path.realpath(PY)
    assert ev["proc.cwd"] == f"{tmp_path}/"
    assert ev["proc.ppid"] == os.getpid()
    assert ev["_pidns"] == os.stat("/proc/self/ns/pid").st_ino
    assert ev["user.uid"] == 0
    fork = log.wait(lambda e: e["evt.type"] == "clone" and e.get("evt.arg.pid") == ev["proc.pid"])
    assert fork["proc.pid"] == os.getpid()
    done = log.wait(lambda e: e["evt.type"] == "procexit" and e["proc.pid"] == ev["proc.pid"])
    assert done["evt.arg.ret"] == 5
    assert done["proc.args"] == ev["proc.args"]  # identity remembered from the exec


def test_uid_change_and_ptrace_attach(log: EventLog) -> None:
    target = subprocess.Popen(["sleep", "30"])
    try:
        done = subprocess.run([PY, "-c", textwrap.dedent(f"""
            import ctypes, os, time
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            print(os.getpid(), libc.ptrace(16, {target.pid}, None, None), flush=True)
            os.waitpid({target.pid}, 0x40000000)
            libc.ptrace(17, {target.pid}, None, None)
            os.setuid(65534)
            time.sleep(0.2)
        """)], capture_output=True, text=True, check=True, timeout=30)
    finally:
        target.kill()
        target.wait()
    pid = int(done.stdout.split()[0])
    attach = log.wait(lambda e: e["evt.type"] == "ptrace" and e["proc.pid"] == pid)
    assert (attach["evt.arg.pid"], attach["evt.arg.request"]) == (target.pid, "PTRACE_ATTACH")
    setuid = log.wait(lambda e: e["evt.type"] == "setuid" and e["proc.pid"] == pid)
    assert (setuid["evt.arg.uid"], setuid["user.uid"]) == (65534, 65534)
    assert setuid["proc.name"] == "python3" or setuid["proc.name"].startswith("python")


def test_cgroup_id_of_a_pod_process(log: EventLog, podlab: PodLab) -> None:
    need_podlab()
    pod = podlab.pod("proc-probe")
    tag = "kgs" + secrets.token_hex(4)
    assert pod.run([PY, "-c", HOLD, tag]).returncode == 0
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args", "").endswith(tag)
                  and e.get("proc.exepath") == os.path.realpath(PY))  # not the sh/nsenter wrapping it
    assert ev["_cgroup_id"] == pod.cgroup_id
    assert ev["_cgroup_path"] == pod.cgroup_path


def test_blind_spots_are_stated_and_nothing_lost(log: EventLog) -> None:
    assert any("network" in spot for spot in log.sensor.blind_spots)
    stats = log.sensor.stats()
    assert stats["events"] > 0
    assert (stats["lost"], stats["parse_errors"]) == (0, 0)
