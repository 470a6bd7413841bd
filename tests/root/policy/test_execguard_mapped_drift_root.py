"""Zero drift for code mapped from files: in a container with zero drift on, a process that maps a file changed
after the container started as executable (LD_PRELOAD, dlopen) is killed at mmap's entry, before any of the
file's code runs; shared objects from before the start load as always, and containers without zero drift are
not concerned. The compiled guard also kills a process that makes such a mapping executable later (mprotect)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from podlab import Pod, PodLab
from roothelpers import require

from kubeguard.policy.execguard import COMPILED, ExecGuard, GuardedCgroup

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
CSRC = Path(__file__).resolve().parent / "csrc"
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
ENV = os.path.realpath(shutil.which("env") or "/usr/bin/env")
PYTHON = os.path.realpath(sys.executable)
DLOPEN = "import ctypes, sys; ctypes.CDLL(sys.argv[1]); print('loaded')"


def old_library() -> str:
    """A shared object from before any test pod started (the system's libm)."""
    name = ctypes.util.find_library("m")
    found = next((str(p) for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
                  if name and (p := Path(d) / name).exists()), None)
    require(found is not None, "the system's libm")
    assert found is not None
    return found


def wait_for_kills(guard: ExecGuard, count: int) -> None:
    """Until the guard has reported `count` kills (its K lines)."""
    deadline = time.monotonic() + 60
    while guard.kills < count:
        assert time.monotonic() < deadline, "the kills were not reported"
        time.sleep(0.05)


def test_a_drifted_shared_object_is_killed_as_it_is_mapped(podlab: PodLab) -> None:
    require(shutil.which("gcc") is not None, "gcc (the test's shared object)")
    work = Path(tempfile.mkdtemp(prefix="kgd", dir="/tmp"))
    guard = ExecGuard()
    try:
        guarded = podlab.pod("drift")
        free = podlab.pod("free")  # no zero drift: not the guard's business
        lib = work / "preload.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(CSRC / "preload.c")], check=True)
        markers = work / "markers"
        markers.mkdir()
        start = os.stat(guarded.cgroup_v2).st_ctime_ns
        while os.stat(lib).st_ctime_ns <= start:  # written after the pod started: ctime moves with a coarse clock
            os.chmod(lib, 0o755)
        guard.apply([GuardedCgroup(guarded.cgroup_id, profile=False, drift_after_ns=start)])

        def preload(pod_run: object, library: str) -> subprocess.CompletedProcess[str]:
            return pod_run([ENV, f"LD_PRELOAD={library}", f"KG_MARKERS={markers}", TRUE], timeout=60)  # type: ignore[operator]

        run = preload(free.run, str(lib))  # the object's code runs where nothing guards (the test's control)
        assert run.returncode == 0 and len(list(markers.iterdir())) == 1, run.stderr
        for marker in markers.iterdir():
            marker.unlink()
        kills = guard.kills
        assert preload(guarded.run, str(lib)).returncode == -signal.SIGKILL
        dl = guarded.run([ENV, f"KG_MARKERS={markers}", PYTHON, "-c", DLOPEN, str(lib)], timeout=60)
        assert dl.returncode == -signal.SIGKILL and "loaded" not in dl.stdout
        assert list(markers.iterdir()) == [], "the drifted object's code ran"
        assert preload(guarded.run, old_library()).returncode == 0  # from before the start: loads
        assert guarded.run([PYTHON, "-c", "import json, ssl; print('ok')"], timeout=60).stdout.strip() == "ok"
        wait_for_kills(guard, kills + 2)  # the K lines of both
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("exec_guard_backend", [COMPILED], indirect=True)  # bpftrace 0.17 cannot find a mapping
def test_a_drifted_file_made_executable_later_is_killed(podlab: PodLab) -> None:
    """A manual loader's mprotect(PROT_EXEC) of a drifted file's mapping is killed at the call's entry, also when
    the range starts on an anonymous page in front of it; anonymous memory (a JIT's) and files from before the
    start are not concerned, nor a container without zero drift."""
    require(shutil.which("gcc") is not None, "gcc (the test's loader)")
    work = Path(tempfile.mkdtemp(prefix="kgm", dir="/tmp"))
    guard = ExecGuard()
    try:
        loader = work / "mprotect"  # built before the pods start: not drifted itself
        subprocess.run(["gcc", "-O2", "-o", str(loader), str(CSRC / "mprotect.c")], check=True)
        guarded = podlab.pod("mprot")
        free = podlab.pod("mfree")
        markers = work / "markers"
        markers.mkdir()
        payload = work / "payload.bin"
        payload.write_bytes(b"\xc3" * 4096)  # `ret`s
        start = os.stat(guarded.cgroup_v2).st_ctime_ns
        assert os.stat(loader).st_ctime_ns <= start
        while os.stat(payload).st_ctime_ns <= start:  # written after the pod started (a coarse ctime clock)
            os.chmod(payload, 0o644)
        guard.apply([GuardedCgroup(guarded.cgroup_id, profile=False, drift_after_ns=start)])

        def load(pod: Pod, *args: str) -> subprocess.CompletedProcess[str]:
            return pod.run([ENV, f"KG_MARKERS={markers}", str(loader), *args], timeout=60)

        def marked() -> int:
            count = len(list(markers.iterdir()))
            for marker in markers.iterdir():
                marker.unlink()
            return count

        run = load(free, str(payload))  # where nothing guards, the loader gets there (the test's control)
        assert run.returncode == 0 and marked() == 1, run.stderr
        kills = guard.kills
        for args in ((str(payload),), (str(payload), "span")):
            run = load(guarded, *args)
            assert run.returncode == -signal.SIGKILL and "mapped" in run.stdout, (args, run)
        assert marked() == 0, "mprotect returned in a guarded container"
        assert load(guarded, old_library()).returncode == 0 and marked() == 1  # a file from before the start
        assert load(guarded, "-").returncode == 0 and marked() == 1  # anonymous memory, as a JIT makes it
        wait_for_kills(guard, kills + 2)  # the K lines of both
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)
