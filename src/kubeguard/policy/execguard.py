"""Blocking executables in the kernel: bpftrace `signal("KILL")` at sched_process_exec.

At sched_process_exec the new image is mapped but has not run an instruction; a SIGKILL sent there
is delivered on the way back to user space, so the program never runs its own code (measured:
every one of 10,000 short-lived execs killed, see tests/root/policy). The decision is in the kernel:

- per guarded cgroup (a protected container), the inode numbers of the executables its profile
  allows (`mode` bit 1); any other executable is killed;
- zero drift (`mode` bit 2): an executable whose inode changed after the container started
  (written or replaced later) is killed, whatever the profile says.

The allowed inodes are those of the profile's paths inside the container (``/proc/PID/root``), so
symlinks and relative exec paths do not matter.

Scripts: when the new image is one of the cgroup's allowed interpreters (``interpreter_inodes``), the
program stops it with SIGSTOP at the same point (no instruction of the interpreter has run) and reports
it; the agent reads its argv (``/proc/PID/cmdline``, where a ``#!`` script exec'd directly appears as
``interpreter [arg] script``) and working directory, names the script (`scripts.script_of_argv`) and
answers SIGCONT when the workload's spec.scripts allows it (or no script file is named: ``-c``, stdin)
or SIGKILL when not. A SIGCONT from anyone but the agent cannot release it early: until the agent's own
SIGCONT is seen (signal_generate, under the target's signal lock), any system call the stopped process
makes kills it, so it cannot open its script.

The program text is fixed; a plan lives in its maps. Each plan gets a new bpftrace whose maps the agent writes
through bpf() (`plan_entries`; maps sized to the plan with BPFTRACE_MAP_KEYS_MAX, so no entry is dropped by
bpftrace's default 4096 keys) before the old program stops, so there is no unguarded gap.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from kubeguard.policy.bpfsys import BpfError, map_update, process_maps
from kubeguard.policy.document import ScriptRule
from kubeguard.policy.scripts import script_of_argv

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
    interpreter_inodes: frozenset[int] = frozenset()  # held at exec until their script is checked
    scripts: tuple[ScriptRule, ...] = ()  # the scripts those interpreters may run

    def script_allowed(self, path: str) -> bool:
        """Whether spec.scripts allows `path` (a deny rule wins)."""
        matching = [r for r in self.scripts if r.matches(path)]
        return bool(matching) and all(r.action != "deny" for r in matching)

    @property
    def mode(self) -> int:
        return (MODE_PROFILE if self.profile else 0) | (MODE_DRIFT if self.drift_after_ns is not None else 0)


MAPS = ("g", "s", "a", "i")  # written last to first: a cgroup's mode (@g) turns its other entries on
MIN_MAP_KEYS = 4096  # bpftrace's default map size; bigger plans get bigger maps (BPFTRACE_MAP_KEYS_MAX)


def plan_entries(guarded: list[GuardedCgroup]) -> dict[str, dict[tuple[int, ...], int]]:
    """The program's map contents for `guarded`: @g mode per cgroup, @s zero-drift start, @a allowed and @i held
    (interpreter) inodes per (cgroup, inode)."""
    maps: dict[str, dict[tuple[int, ...], int]] = {name: {} for name in MAPS}
    for g in guarded:
        maps["g"][(g.cgroup_id,)] = g.mode
        if g.drift_after_ns is not None:
            maps["s"][(g.cgroup_id,)] = g.drift_after_ns
        maps["a"].update(((g.cgroup_id, ino), 1) for ino in g.allowed_inodes)
        maps["i"].update(((g.cgroup_id, ino), 1) for ino in g.interpreter_inodes)
    return maps


def map_keys_max(guarded: list[GuardedCgroup]) -> int:
    """Keys per map the plan needs (a power of two, at least bpftrace's default)."""
    need = max(len(entries) for entries in plan_entries(guarded).values()) + 1  # + the placeholder key
    size = MIN_MAP_KEYS
    while size < need:
        size *= 2
    return size


def program() -> str:
    """The bpftrace program of the guard; its maps are filled from outside (`ExecGuard._fill`) once it runs."""
    lines = ["BEGIN {", "  @g[0] = 0; @s[0] = 0; @a[0, 0] = 0; @i[0, 0] = 0; @p[0] = 0;  // every map defined",
             '  printf("READY\\n");', "}"]
    lines.append("""tracepoint:sched:sched_process_exec /@g[cgroup]/ {
  $i = (struct inode *)curtask->mm->exe_file->f_inode;
  $m = @g[cgroup];
  $bad = 0;
  if (($m & 1) && @a[cgroup, $i->i_ino] == 0) { $bad = 1; }
  if (($m & 2) && (uint64)$i->i_ctime_sec * 1000000000 + $i->i_ctime_nsec > @s[cgroup]) { $bad = $bad | 2; }
  if ($bad) {
    signal("KILL");
    printf("K %d %llu %llu %d\\n", pid, cgroup, $i->i_ino, $bad);
  } else if (@i[cgroup, $i->i_ino]) {
    signal(19);  // SIGSTOP
    @p[pid] = 1;
    printf("S %d %llu\\n", pid, cgroup);
  }
}
tracepoint:signal:signal_generate /args->sig == 18 && @p[args->pid] && pid == $1/ { delete(@p[args->pid]); }
tracepoint:raw_syscalls:sys_enter /@p[pid]/ { signal("KILL"); delete(@p[pid]); printf("E %d\\n", pid); }
tracepoint:sched:sched_process_exit /@p[pid]/ { delete(@p[pid]); }""")
    return "\n".join(lines) + "\n"


@dataclass
class _Run:
    proc: subprocess.Popen[str]
    reader: threading.Thread
    ready: threading.Event = field(default_factory=threading.Event)
    guarded: dict[int, GuardedCgroup] = field(default_factory=dict)


class ExecGuard:
    """Keeps one bpftrace guard running for the current set of guarded cgroups."""

    def __init__(self, bpftrace: str | None = None) -> None:
        self.bpftrace = bpftrace or shutil.which("bpftrace") or ""
        self.current: _Run | None = None
        self.guarded: list[GuardedCgroup] = []
        self.kills = 0
        self.script_kills = 0
        self.early_kills = 0  # held interpreters that made a system call before the agent's answer
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
        env = {**os.environ, "BPFTRACE_MAP_KEYS_MAX": str(map_keys_max(guarded))}
        proc = subprocess.Popen([self.bpftrace, "--unsafe", "-B", "line", "-e", program(), str(os.getpid())],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        run = _Run(proc, threading.Thread(target=lambda: None), guarded={g.cgroup_id: g for g in guarded})
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
        try:
            self._fill(proc.pid, guarded)
        except BpfError as exc:
            self._stop(run)
            raise ExecGuardError(f"exec guard: could not write its plan: {exc}") from None
        return run

    @staticmethod
    def _fill(pid: int, guarded: list[GuardedCgroup]) -> None:
        """Write the plan into the maps of the running program `pid` (its cgroups' modes last, turning them on)."""
        fds = process_maps(pid, {f"AT_{name}" for name in MAPS})
        try:
            missing = [name for name in MAPS if f"AT_{name}" not in fds]
            if missing:
                raise BpfError(f"maps {', '.join('@' + m for m in missing)} not found in bpftrace pid {pid}")
            entries = plan_entries(guarded)
            for name in reversed(MAPS):
                for key, value in entries[name].items():
                    map_update(fds[f"AT_{name}"], struct.pack(f"<{len(key)}Q", *key), struct.pack("<q", value))
        finally:
            for fd in fds.values():
                os.close(fd)

    def _read(self, run: _Run) -> None:
        stream: IO[str] | None = run.proc.stdout
        if stream is None:
            return
        for line in stream:
            if line.startswith("READY"):
                run.ready.set()
            elif line.startswith(("K ", "E ")):
                with self._lock:
                    self.kills += 1
                    self.early_kills += line.startswith("E ")
            elif line.startswith("S "):
                self._decide_script(run, line)

    def _decide_script(self, run: _Run, line: str) -> None:
        """Release (SIGCONT) or kill an interpreter the program stopped at exec, by the script it names."""
        try:
            _, pid_text, cgroup_text = line.split()
            pid, cgroup_id = int(pid_text), int(cgroup_text)
        except ValueError:
            log.warning("exec guard: unreadable line %r", line.strip())
            return
        rules = run.guarded.get(cgroup_id)
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="surrogateescape") for a in f.read().split(b"\0")[:-1]]
        except OSError:
            self._signal(pid, signal.SIGKILL)  # gone already, or unreadable: never released unchecked
            return
        script = script_of_argv(exe, argv[1:], cwd)
        if script is None or (rules is not None and rules.script_allowed(script)):
            self._signal(pid, signal.SIGCONT)
            return
        with self._lock:  # counted first: whoever waits for the process sees the count
            self.kills += 1
            self.script_kills += 1
        self._signal(pid, signal.SIGKILL)
        log.info("exec guard: killed pid %d running script %s", pid, script)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except OSError:
            pass

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
