"""The exec guard's two programs are drop-ins for each other (#13): the same maps by name, type, key and value size
and plan-sized max_entries (what ExecGuard writes with pack_key and the hold trap reads); zero drift reads an
inode's ctime without the flag Linux 6.13+ keeps in its top nanosecond bit; and the compiled guard's loader ends
as bpftrace's does (SIGTERM, its stdout gone, the answerer exiting), detaching its programs, and says a start-up
error in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require

from kubeguard.bpfbuild import BuildUnavailable, Built
from kubeguard.policy.execguard import MAPS, ExecGuard, GuardedCgroup, compiled_guard, map_keys_max

pytestmark = pytest.mark.root
# bpftrace 0.17's layout: integers as 8 bytes, strings as 64; values 8 bytes (bpftool map show of program())
NO_CGROUP = 1 << 62  # no such cgroup (1 is the root cgroup)
KEY_SIZES = {"g": 8, "s": 8, "a": 16, "i": 16, "c": 72, "m": 8, "r": 8, "p": 8}
# the compiled guard's programs, by the names bpftool shows
GUARD_PROGRAMS = ("guard_exec", "guard_signal", "guard_exit", "guard_mmap", "guard_mprotect")


def maps_of(pid: int) -> dict[str, dict[str, object]]:
    """`bpftool map show` of the AT_ maps process `pid` holds, by name."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        if "map_id" in fields:
            ids.add(int(fields["map_id"]))
    shown = json.loads(subprocess.run(["bpftool", "map", "show", "-j"], capture_output=True, text=True,
                                      check=True).stdout)
    return {m["name"]: m for m in shown if m["id"] in ids and str(m.get("name", "")).startswith("AT_")}


@pytest.mark.usefixtures("exec_guard_backend")
def test_the_maps_are_bpftrace_s() -> None:
    guard = ExecGuard()
    plan = [GuardedCgroup(NO_CGROUP, frozenset(range(1, 5000)), interpreter_inodes=frozenset({7}))]
    try:
        guard.apply(plan)
        assert guard.current is not None and guard.current.trap is not None  # the hold trap found @p
        maps = maps_of(guard.current.proc.pid)
    finally:
        guard.close()
    assert sorted(maps) == sorted(f"AT_{name}" for name in (*MAPS, "p"))
    for name, key_size in KEY_SIZES.items():
        m = maps[f"AT_{name}"]
        assert (m["type"], m["bytes_key"], m["bytes_value"], m["max_entries"]) == \
            ("hash", key_size, 8, map_keys_max(plan)), m


@pytest.mark.usefixtures("exec_guard_backend")
def test_zero_drift_reads_ctime_without_the_queried_flag(podlab: PodLab) -> None:
    """Since Linux 6.13 a stat of a file sets I_CTIME_QUERIED, the top bit of i_ctime_nsec (2.1 s if read as
    time): an executable written just before the container started is not drift."""
    work = Path(tempfile.mkdtemp(prefix="kgd", dir="/tmp"))
    guard = ExecGuard()
    try:
        before = work / "before"
        shutil.copy("/usr/bin/true", before)
        os.stat(before)  # queried: the kernel flags its ctime
        time.sleep(0.05)
        pod = podlab.pod("drifter")
        guard.apply([GuardedCgroup(pod.cgroup_id, profile=False, drift_after_ns=time.time_ns())])
        assert pod.run([str(before)]).returncode == 0
        time.sleep(0.05)
        after = work / "after"
        shutil.copy("/usr/bin/true", after)
        assert pod.run([str(after)]).returncode == -signal.SIGKILL  # written after the start: drift
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


def built() -> Built:
    try:
        return compiled_guard()
    except BuildUnavailable as exc:
        require(False, f"the compiled exec guard ({exc})")
        raise


def programs_attached() -> set[str]:
    shown = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                                      check=True).stdout)
    return {p["name"] for p in shown if p.get("name") in GUARD_PROGRAMS}


def start_loader(guard: Built, answerer: int, stdout: int) -> subprocess.Popen[bytes]:
    loader = subprocess.Popen([str(guard.loader), str(guard.bpf_object), str(answerer), "5", "4096"], stdout=stdout,
                              stderr=subprocess.PIPE)
    return loader


def ready(read_end: int) -> None:
    assert os.read(read_end, 100) == b"READY 5\n"


@pytest.mark.parametrize("end", ["SIGTERM", "stdout gone", "answerer exits"])
def test_the_compiled_loader_ends_and_detaches(end: str) -> None:
    guard = built()
    before = programs_attached()
    answerer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    read_end, write_end = os.pipe()
    loader = start_loader(guard, answerer.pid, write_end)
    os.close(write_end)
    try:
        ready(read_end)
        assert programs_attached() - before == set(GUARD_PROGRAMS)
        if end == "SIGTERM":
            loader.send_signal(signal.SIGTERM)
        elif end == "stdout gone":
            os.close(read_end)
            read_end = -1
        else:
            assert answerer.stdin is not None
            answerer.stdin.close()
        assert loader.wait(timeout=10) == 0
    finally:
        if loader.poll() is None:
            loader.kill()
        answerer.kill()
        answerer.wait()
        if read_end >= 0:
            os.close(read_end)
    deadline = time.monotonic() + 10  # programs go once their links' fds are released
    while programs_attached() - before:
        assert time.monotonic() < deadline, programs_attached()
        time.sleep(0.1)


def test_a_compiled_loader_that_cannot_start_says_why_in_one_line() -> None:
    guard = built()
    gone = subprocess.Popen(["true"])
    gone.wait()
    loader = start_loader(guard, gone.pid, subprocess.DEVNULL)
    _, err = loader.communicate(timeout=30)
    assert loader.returncode == 1
    assert err.decode().splitlines() == [f"ERROR: execguard: the script answerer (pid {gone.pid}) is not running"]
