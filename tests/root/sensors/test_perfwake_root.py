"""bpftrace under the perf wake-up shim: every record delivered at low and storm rates, and it still exits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import need_root, require
from kubeguard.sensors.ebpf import tracing_dir
from kubeguard.sensors.perfwake import shim_env

PROGRAM = """
BEGIN { printf("READY\\n"); }
tracepoint:syscalls:sys_enter_getppid /pid == %d/ { printf("HIT %%d\\n", @n); @n = @n + 1; }
"""


def test_records_arrive_without_per_event_wakeups(tmp_path: Path) -> None:
    need_root("bpftrace")
    require(shutil.which("bpftrace") is not None, "bpftrace")
    require(tracing_dir() is not None, "tracefs")
    env = shim_env(rb_pages=1024)
    assert env, "the shim could not be built"
    out = tmp_path / "out.txt"
    me = os.getpid()
    with out.open("wb") as sink:
        proc = subprocess.Popen(["bpftrace", "-e", PROGRAM % me], stdout=sink, stderr=subprocess.PIPE,
                                env={**os.environ, "BPFTRACE_PERF_RB_PAGES": "1024", **env})
    try:
        deadline = time.monotonic() + 300  # compiling the program takes long on a loaded 2-core machine
        while b"READY" not in out.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, "bpftrace did not start"
            time.sleep(0.1)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert env["LD_PRELOAD"].split()[0] in maps  # the shim is loaded into bpftrace
        deadline = time.monotonic() + 60
        os.getppid()  # one record at a low rate: delivered by the periodic drain, not by a wake-up
        while b"HIT 0\n" not in out.read_bytes():
            assert time.monotonic() < deadline, "a single record was never delivered"
            time.sleep(0.05)
        for _ in range(20000):  # a storm (bigger than the watermark: wakes the reader), none lost
            os.getppid()
        while out.read_bytes().count(b"HIT ") < 20001:
            assert time.monotonic() < deadline, f"{out.read_bytes().count(b'HIT ')} of 20001 records delivered"
            time.sleep(0.05)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)  # its final drain ends (the shim reports empty rings as not ready)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert "Lost" not in stderr
    hits = [int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("HIT ")]
    assert sorted(hits) == list(range(20001))


STAMPED = """
BEGIN { printf("READY\\n"); }
tracepoint:syscalls:sys_enter_getppid /comm == "%s"/ { printf("HIT %%lld\\n", nsecs); }
"""


def test_drain_markers_follow_every_earlier_record(tmp_path: Path) -> None:
    """With markers on, each drain's marker line comes after every record stamped before the drain's time, whichever
    CPU's ring held it (two processes pinned to two CPUs call getppid at once): the guarantee timeorder.py uses."""
    need_root("bpftrace")
    require(shutil.which("bpftrace") is not None, "bpftrace")
    require(tracing_dir() is not None, "tracefs")
    require((os.cpu_count() or 1) >= 2, "two CPUs")
    env = shim_env(rb_pages=1024, markers=True)
    assert env, "the shim could not be built"
    comm = "kgmark" + str(os.getpid() % 10000)
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen(["bpftrace", "-e", STAMPED % comm], stdout=sink, stderr=subprocess.PIPE,
                                env={**os.environ, "BPFTRACE_PERF_RB_PAGES": "1024", **env})
    try:
        deadline = time.monotonic() + 300
        while b"READY" not in out.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, "bpftrace did not start"
            time.sleep(0.1)
        code = (f"import os, time\nopen('/proc/self/comm', 'w').write('{comm}')\nend = time.monotonic() + 1.5\n"
                "while time.monotonic() < end:\n    os.getppid()\n    time.sleep(0.0002)\n")
        callers = [subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", code]) for cpu in (0, 1)]
        for caller in callers:
            caller.wait(timeout=60)
        deadline = time.monotonic() + 30
        while out.read_bytes().count(b"kg_drain") < 3:
            assert time.monotonic() < deadline, "no drain markers"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stamps, seen_after = [], []
    for line in out.read_text().splitlines():
        if line.startswith("HIT "):
            stamps.append(int(line.split()[1]))
        elif "kg_drain" in line:
            drained = int(line.rsplit(":", 1)[1].strip(" }"))
            seen_after.append((drained, len(stamps)))
    assert len(stamps) > 1000 and seen_after
    for drained, count in seen_after:
        late = [t for t in stamps[count:] if t < drained - 2_000_000]
        assert not late, f"{len(late)} records stamped before a drain came after its marker"
