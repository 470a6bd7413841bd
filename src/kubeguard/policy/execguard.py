"""Blocking executables in the kernel: bpftrace `signal("KILL")` at sched_process_exec.

At sched_process_exec the new image is mapped but has not run an instruction; a SIGKILL sent there
is delivered on the way back to user space, so the program never runs its own code (measured:
every one of 10,000 short-lived execs killed, see tests/root/policy). The decision is in the kernel:

- per guarded cgroup (a protected container), the inode numbers of the executables its profile
  allows (`mode` bit 1); any other executable is killed;
- zero drift (`mode` bit 2): an executable whose inode changed after the container started
  (written or replaced later) is killed, whatever the profile says.

The allowed inodes are those of the profile's paths inside the container (``/proc/PID/root``), so
symlinks and relative exec paths do not matter. A script is run by its interpreter: the check sees
the interpreter's inode. The program is generated from the plan and restarted when the plan
changes; the new program is running before the old one stops, so there is no unguarded gap.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 60.0
MODE_PROFILE = 1
MODE_DRIFT = 2


class ExecGuardError(Exception):
    """bpftrace is missing or the guard program did not start; one line."""


@dataclass(frozen=True)
class GuardedCgroup:
    """One container's exec rules."""

    cgroup_id: int
    allowed_inodes: frozenset[int] = frozenset()
    profile: bool = True  # kill anything not in allowed_inodes
    drift_after_ns: int | None = None  # kill executables changed after this time (zero drift)

    @property
    def mode(self) -> int:
        return (MODE_PROFILE if self.profile else 0) | (MODE_DRIFT if self.drift_after_ns is not None else 0)


def program(guarded: list[GuardedCgroup]) -> str:
    """The bpftrace program enforcing `guarded`."""
    lines = ["BEGIN {", "  @g[0] = 0; @s[0] = 0; @a[0, 0] = 0;  // every map defined, whatever the plan"]
    for g in sorted(guarded, key=lambda g: g.cgroup_id):
        lines.append(f"  @g[{g.cgroup_id}] = {g.mode};")
        if g.drift_after_ns is not None:
            lines.append(f"  @s[{g.cgroup_id}] = {g.drift_after_ns};")
        lines.extend(f"  @a[{g.cgroup_id}, {ino}] = 1;" for ino in sorted(g.allowed_inodes))
    lines.append('  printf("READY\\n");')
    lines.append("}")
    lines.append("""tracepoint:sched:sched_process_exec /@g[cgroup]/ {
  $i = (struct inode *)curtask->mm->exe_file->f_inode;
  $m = @g[cgroup];
  $bad = 0;
  if (($m & 1) && @a[cgroup, $i->i_ino] == 0) { $bad = 1; }
  if (($m & 2) && (uint64)$i->i_ctime_sec * 1000000000 + $i->i_ctime_nsec > @s[cgroup]) { $bad = $bad | 2; }
  if ($bad) {
    signal("KILL");
    printf("K %d %llu %llu %d\\n", pid, cgroup, $i->i_ino, $bad);
  }
}""")
    return "\n".join(lines) + "\n"


@dataclass
class _Run:
    proc: subprocess.Popen[str]
    reader: threading.Thread
    ready: threading.Event = field(default_factory=threading.Event)


class ExecGuard:
    """Keeps one bpftrace guard running for the current set of guarded cgroups."""

    def __init__(self, bpftrace: str | None = None) -> None:
        self.bpftrace = bpftrace or shutil.which("bpftrace") or ""
        self.current: _Run | None = None
        self.guarded: list[GuardedCgroup] = []
        self.kills = 0
        self._lock = threading.Lock()

    def apply(self, guarded: list[GuardedCgroup]) -> None:
        """Enforce exactly `guarded` (no-op when unchanged); raises ExecGuardError."""
        if sorted(guarded, key=lambda g: g.cgroup_id) == sorted(self.guarded, key=lambda g: g.cgroup_id):
            return
        old = self.current
        self.current = self._start(guarded) if guarded else None
        self.guarded = list(guarded)
        if old is not None:
            self._stop(old)

    def _start(self, guarded: list[GuardedCgroup]) -> _Run:
        if not self.bpftrace:
            raise ExecGuardError("exec guard: bpftrace not found (install Debian's bpftrace)")
        proc = subprocess.Popen([self.bpftrace, "--unsafe", "-B", "line", "-e", program(guarded)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        run = _Run(proc, threading.Thread(target=lambda: None))
        run.reader = threading.Thread(target=self._read, args=(run,), name="execguard", daemon=True)
        run.reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not run.ready.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                err = [line for line in (proc.stderr.read() if proc.stderr else "").splitlines() if "ERROR" in line]
                self._stop(run)
                raise ExecGuardError(f"exec guard did not start: {err[-1].strip() if err else 'timeout'}")
        return run

    def _read(self, run: _Run) -> None:
        stream: IO[str] | None = run.proc.stdout
        if stream is None:
            return
        for line in stream:
            if line.startswith("READY"):
                run.ready.set()
            elif line.startswith("K "):
                with self._lock:
                    self.kills += 1

    @staticmethod
    def _stop(run: _Run) -> None:
        if run.proc.poll() is None:
            run.proc.terminate()
            try:
                run.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
        run.reader.join(timeout=5)
        for stream in (run.proc.stdout, run.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.proc.poll() is None

    def close(self) -> None:
        if self.current is not None:
            self._stop(self.current)
            self.current = None
        self.guarded = []
