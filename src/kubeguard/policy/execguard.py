"""Blocking executables in the kernel: SIGKILL at sched_process_exec, from a compiled BPF program or bpftrace.

Two backends run the same program (same maps, same decisions, same output lines): the compiled guard
(execguard.bpf.c, tp_btf programs the kernel calls directly, and its libbpf loader execguard.c, built on first
use by kubeguard.bpfbuild) and, where it cannot be built (no clang, bpftool or libbpf, as in the DaemonSet
image) or ``KUBEGUARD_EXEC_GUARD_COMPILED=0``, the bpftrace program `program()`, whose perf tracepoints cost
more per run. Below, "the program" is either; keep the two in sync. The compiled guard skips its @p lookup
at signals and exits while nothing is held (a count of @p's entries), which bpftrace cannot express.

At sched_process_exec the new image is mapped but has not run an instruction; a SIGKILL sent there
is delivered on the way back to user space, so the program never runs its own code (measured:
every one of 10,000 short-lived execs killed, see tests/root/policy). The decision is in the kernel:

- per guarded cgroup (a protected container), the inode numbers of the executables its profile
  allows (`mode` bit 1); any other executable is killed;
- zero drift (`mode` bit 2): an executable whose inode changed after the container started
  (written or replaced later) is killed, whatever the profile says; so is a process mapping such a file
  executable (mmap PROT_EXEC: LD_PRELOAD, dlopen), at the call's entry (``K`` line, why 4), and, in the
  compiled form only, one making such a mapping executable later (mprotect PROT_EXEC: a manual loader).

The allowed inodes are those of the profile's paths inside the container (``/proc/PID/root``), so
symlinks and relative exec paths do not matter.

Scripts: when the new image is one of the cgroup's allowed interpreters (``interpreter_inodes``), the
program stops it with SIGSTOP at the same point (no instruction of the interpreter has run) and reports
it to the script answerer (`script_answer`, a small process of its own: the program's stdout is its
stdin), which reads its argv (``/proc/PID/cmdline``, where a ``#!`` script exec'd directly appears as
``interpreter [arg] script``) and working directory, names the script (`scripts.script_of_argv`) and
answers SIGCONT when the workload's spec.scripts allows it (or no script file is named: ``-c``, stdin)
or SIGKILL when not. A SIGCONT from anyone but the answerer (the agent included) cannot release it
early: until the answerer's SIGCONT is seen (signal_generate, under the target's signal lock), any
system call the stopped process makes kills it, so it cannot open its script. The answerer passes the
program's kill lines on to the agent, with one line per script it killed (the counters here).
No hold at all when argv[1] names exactly a script the cgroup allows by its exact path (`direct_scripts`,
map @c; ``#!/bin/sh`` scripts exec'd by their path and ``sh /app/run.sh``): the answerer would name
that same script (the first operand), so the program lets it run at once. Nor when argv[1] is exactly ``-c``
to a shell or python (``inline_code_inodes``, @i value 2: system(), popen() and ``sh -c`` exec probes): code
on the command line, no script file, which the answerer would release too. Nor, for a shell (sh, ash, bash, dash by
its real file; ``shell_inodes``, @i value 3), when argv[1] is only POSIX options that take no argument and read
nothing (``-e``, ``-eux``: a b C e f h m n u v x) and argv[2] names exactly such a script: the answerer skips
those options and would name argv[2] too.

New containers: a pod's cgroup in the plan (``pod=True``, @g value 4) makes the program stop (SIGSTOP) any exec in
a container below it that the plan lacks, except the runtime's own (from the mount namespace in @r for the pod),
and print an ``N`` line, which the answerer passes on; `on_new_container` gets it (the agent's enforcer plans the
container, then `kill_held`, `judge_held` for an interpreter, or `release_held`); with no handler it is killed.

The program text is fixed; a plan lives in its maps, which the agent writes through bpf()
(`plan_entries`; maps sized to the plan, BPFTRACE_MAP_KEYS_MAX or the loader's argument, so no entry is
dropped by bpftrace's default 4096 keys). A new plan is written into the running program's maps in place:
entries added before the cgroup's mode turns them on, a removed cgroup's mode cleared before its
entries, so each exec sees a cgroup's old rules or its new ones, never none. A plan that no longer
fits the maps starts a new program, filled before the old one stops, so there is no unguarded gap.
One answerer serves every program while any runs (the same releasing pid ``$1``, so an interpreter
held by both programs during a change is released by one answer); each program's lines carry its
number, and the answerer decides by that program's rules. The program exits when the answerer does;
the answerer exits at the end of its input (`close`) or when the agent's thread that started it ends
(PR_SET_PDEATHSIG), so neither outlives the agent. Held interpreters stay stopped when the answerer is
gone (fails closed).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubeguard.bpfbuild import BuildUnavailable, Built
from kubeguard.bpfbuild import build as build_bpf
from kubeguard.policy import holdtrap
from kubeguard.policy.bpfsys import BpfError, map_delete, map_update, process_maps
from kubeguard.policy.script_answer import rules_json
from kubeguard.policy.scripts import ScriptRule, is_pattern, script_allowed
from kubeguard.sensors.perfwake import CACHE_DIRS

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0  # a program not gone this long after SIGTERM is killed (its successor already runs)
MODE_PROFILE = 1
MODE_DRIFT = 2
MODE_POD = 4  # a pod cgroup: an exec in a container below it that the plan lacks is held for the agent
COMPILED_SWITCH = "KUBEGUARD_EXEC_GUARD_COMPILED"  # "0": the bpftrace program even where the compiled one builds
COMPILED = "compiled"
BPFTRACE = "bpftrace"


class ExecGuardError(Exception):
    """No guard program can run (bpftrace missing, no compiled guard) or it did not start; one line."""


def compiled_guard(cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> Built:
    """The compiled guard's loader and object for this kernel (built now if not cached); raises BuildUnavailable."""
    return build_bpf("kubeguard.policy", "execguard", cache_dirs=cache_dirs)


def choose_backend(compiled: bool | None = None, cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> tuple[Built | None, str]:
    """The compiled guard when wanted (`compiled`; None: unless KUBEGUARD_EXEC_GUARD_COMPILED=0) and buildable,
    else None (bpftrace); and why, for the log."""
    if compiled is None:
        compiled = os.environ.get(COMPILED_SWITCH, "1") != "0"
    if not compiled:
        return None, f"{COMPILED_SWITCH}=0" if os.environ.get(COMPILED_SWITCH) == "0" else "compiled guard not wanted"
    try:
        return compiled_guard(cache_dirs), "tp_btf programs, execguard.bpf.c"
    except BuildUnavailable as exc:
        return None, f"compiled guard unavailable: {exc}"


@dataclass(frozen=True)
class GuardedCgroup:
    """One container's exec rules."""

    cgroup_id: int
    allowed_inodes: frozenset[int] = frozenset()
    profile: bool = True  # kill anything not in allowed_inodes
    drift_after_ns: int | None = None  # kill executables changed after this time (zero drift)
    interpreter_inodes: frozenset[int] = frozenset()  # held at exec until their script is checked
    inline_code_inodes: frozenset[int] = frozenset()  # ... of which `-c` gives code, no script (sh, python)
    shell_inodes: frozenset[int] = frozenset()  # ... of which shells (sh, ash, bash, dash): `-e SCRIPT` unheld
    scripts: tuple[ScriptRule, ...] = ()  # the scripts those interpreters may run
    mount_ns: int = 0  # the container's mount namespace (inode number); 0: unknown
    runtime_mount_ns: int = 0  # the mount namespace of the runtime that started it (its shim's); 0: unknown
    pod: bool = False  # a pod's cgroup, not a container's: execs in its containers not in the plan are held (N lines)

    def script_allowed(self, path: str) -> bool:
        """Whether spec.scripts allows `path` (a deny rule wins)."""
        return script_allowed(self.scripts, path)

    @property
    def mode(self) -> int:
        if self.pod:
            return MODE_POD
        return (MODE_PROFILE if self.profile else 0) | (MODE_DRIFT if self.drift_after_ns is not None else 0)


MAPS = ("g", "s", "a", "i", "c", "m", "r")  # written last to first: a cgroup's mode (@g) turns its other entries on
MIN_MAP_KEYS = 4096  # bpftrace's default map size; bigger plans get bigger maps (BPFTRACE_MAP_KEYS_MAX)
INIT_USER_NS = 0xEFFFFFFD  # the initial user namespace's inode number (PROC_USER_INIT_INO, fixed)
ARGV0_MAX = 256  # argv[0] longer than this: argv[1] is not looked for (held)
ADDR32_END = 1 << 32  # an ia32 or x32 process's address space (mm->task_size) ends below it, a 64-bit one far above
STRLEN = 64  # bpftrace's string size (BPFTRACE_STRLEN): a string in a map key takes that many bytes
Key = tuple[int | str, ...]


def direct_scripts(g: GuardedCgroup) -> set[str]:
    """The scripts of `g` its program lets run without a hold when argv[1] names one exactly (``#!/bin/sh`` and
    ``sh /app/run.sh`` alike: the answerer would name that script too, the first operand): absolute, normalised,
    not a pattern, shorter than bpftrace's strings (argv[1] is read cut to STRLEN - 1 bytes, so it cannot equal a
    shorter entry unless it is one) and allowed by all of `g`'s rules (a deny pattern wins). The answerer
    decides every other exec of an interpreter (an option first, a relative path, a pattern)."""
    return {r.path for r in g.scripts
            if r.action == "allow" and r.path.startswith("/") and posixpath.normpath(r.path) == r.path
            and not is_pattern(r.path) and len(r.path.encode()) < STRLEN - 1 and script_allowed(g.scripts, r.path)}


def plan_entries(guarded: list[GuardedCgroup]) -> dict[str, dict[Key, int]]:
    """The program's map contents for `guarded`: @g mode per cgroup, @s zero-drift start, @a allowed and @i held
    (interpreter) inodes per (cgroup, inode), @c scripts released without a hold per (cgroup, path), @m the
    container's mount namespace, @r its runtime's."""
    maps: dict[str, dict[Key, int]] = {name: {} for name in MAPS}
    for g in guarded:
        maps["g"][(g.cgroup_id,)] = g.mode
        if g.drift_after_ns is not None:
            maps["s"][(g.cgroup_id,)] = g.drift_after_ns
        maps["a"].update(((g.cgroup_id, ino), 1) for ino in g.allowed_inodes)
        maps["i"].update(((g.cgroup_id, ino), 3 if ino in g.shell_inodes and ino in g.inline_code_inodes
                          else 2 if ino in g.inline_code_inodes else 1) for ino in g.interpreter_inodes)
        if g.interpreter_inodes:
            maps["c"].update(((g.cgroup_id, path), 1) for path in direct_scripts(g))
        if g.mount_ns:
            maps["m"][(g.cgroup_id,)] = g.mount_ns
        if g.runtime_mount_ns:
            maps["r"][(g.cgroup_id,)] = g.runtime_mount_ns
    return maps


def holds(guarded: list[GuardedCgroup]) -> bool:
    """Whether the plan can hold a process (an allowed interpreter, an exec in a pod's new container): only then
    is the hold trap needed. It runs at every system call of the node (~0.1 us each), so a guard of, say,
    distroless images goes without it; once attached it stays for the program's life (a process held under an
    earlier plan may still be stopped)."""
    return any(g.interpreter_inodes or g.pod for g in guarded)


def pack_key(key: Key) -> bytes:
    """A map key as bpftrace lays it out: integers as 8 bytes, strings NUL-padded to STRLEN bytes."""
    return b"".join(struct.pack("<Q", part) if isinstance(part, int) else part.encode().ljust(STRLEN, b"\0")
                    for part in key)


def map_keys_max(guarded: list[GuardedCgroup]) -> int:
    """Keys per map the plan needs (a power of two, at least bpftrace's default)."""
    need = max(len(entries) for entries in plan_entries(guarded).values()) + 1  # + the placeholder key
    size = MIN_MAP_KEYS
    while size < need:
        size *= 2
    return size


def program(gen: int = 0) -> str:
    """The guard's bpftrace program (the fallback of execguard.bpf.c: keep them in sync), number `gen` (its READY
    and S lines carry it); its maps are filled from outside (`ExecGuard._write`) once it runs. ``$1`` is the script
    answerer's pid: only its SIGCONT releases a held interpreter, and the program exits with it."""
    lines = ["BEGIN {", "  @g[0] = 0; @s[0] = 0; @a[0, 0] = 0; @i[0, 0] = 0; @p[0] = 0;  // every map defined",
             '  @c[(uint64)0, ""] = 0; @m[0] = 0; @r[0] = 0;',
             f'  printf("READY {gen}\\n");', "}"]
    lines.append("""tracepoint:sched:sched_process_exec {
  $m = @g[cgroup];
  if ($m == 0) {  // a container the plan does not know yet, below a pod cgroup in protect (@g value 4): held for
    // the agent, unless it is the runtime's own exec (from the runtime's mount namespace the agent gave for the pod)
    $pc = (uint64)curtask->cgroups->dfl_cgrp->kn->__parent->id;
    if (@g[$pc] != 4) { return; }
    $pns = curtask->nsproxy->mnt_ns;
    if ($pns->ns.inum == @r[$pc] && $pns->user_ns->ns.inum == INIT_USER_NS) { return; }
    signal(19);  // SIGSTOP
    @p[pid] = 1;
    printf("N %d %llu GEN\\n", pid, cgroup);
    return;
  }
  if ($m == 4) { return; }  // a pod cgroup itself
  $i = (struct inode *)curtask->mm->exe_file->f_inode;
  $bad = 0;
  if (($m & 1) && @a[cgroup, $i->i_ino] == 0) { $bad = 1; }
  // i_ctime_nsec's top bit is a flag (I_CTIME_QUERIED, multigrain timestamps since Linux 6.13), not time
  if (($m & 2) && (uint64)$i->i_ctime_sec * 1000000000 + ($i->i_ctime_nsec & 0x7fffffff) > @s[cgroup]) {
    $bad = $bad | 2;
  }
  $hold = 0;
  $k = (uint64)0;
  if ($bad == 0) { $k = @i[cgroup, $i->i_ino]; }
  if ($k) {
    $s = (uint64)curtask->mm->arg_start;  // argv[1]: a script named in @c, or -c, needs no hold
    $n = (uint64)0;
    while ($n < ARGV0_MAX) { if (*(uint8 *)uptr($s + $n) == 0) { break; } $n++; }
    $hold = 1;
    // only when argv[0] ended within ARGV0_MAX bytes (else argv[1] is not found: a longer argv[0] could spell a
    // path in its tail) and an argv[1] follows it (not the first environment string)
    if ($n < ARGV0_MAX && $s + $n + 1 < (uint64)curtask->mm->arg_end) {
      $a1 = str(uptr($s + $n + 1));
      // a script allowed by its exact path; or -c to a shell or python (@i value 2 or 3): code on the command
      // line, no script file (the answerer would release both)
      if (@c[cgroup, $a1] || ($k >= 2 && $a1 == "-c")) { $hold = 0; }
      // a shell (@i value 3) whose argv[1] is only POSIX options that take no argument (-e, -eux: a b C e f h m
      // n u v x) and whose argv[2] is such a script: the answerer would name that one too
      if ($hold && $k == 3 && *(uint8 *)uptr($s + $n + 1) == 45) {
        $b = $s + $n + 1;
        $j = (uint64)1;
        $plain = 1;
        while ($j < 64) {
          $ch = *(uint8 *)uptr($b + $j);
          if ($ch == 0) { break; }
          if (!($ch == 97 || $ch == 98 || $ch == 67 || $ch == 101 || $ch == 102 || $ch == 104 || $ch == 109
                || $ch == 110 || $ch == 117 || $ch == 118 || $ch == 120)) { $plain = 0; break; }
          $j++;
        }
        if ($plain && $j >= 2 && $j < 64 && $b + $j + 1 < (uint64)curtask->mm->arg_end
            && @c[cgroup, str(uptr($b + $j + 1))]) {
          $hold = 0;
        }
      }
    }
  }
  // a 32-bit interpreter (ia32 or x32: its address space ends below 4 GiB) is killed, not held: the syscall
  // tracepoints the hold trap is on do not report its calls (holdtrap.py)
  if ($hold && (uint64)curtask->mm->task_size < ADDR32_END) { $bad = 8; $hold = 0; }
  if ($bad || $hold) {  // only then: is this the runtime's own exec into the cgroup (runc init, from the runtime's
    // mount namespace)? It is not the container's and is neither killed nor held (an allowed exec skips this check).
    // A mount namespace the container made (unshare -m, also when privileged) is not the runtime's: judged.
    $ns = curtask->nsproxy->mnt_ns;
    if (@m[cgroup] && $ns->ns.inum != @m[cgroup] && $ns->user_ns->ns.inum == INIT_USER_NS
        && (@r[cgroup] == 0 || $ns->ns.inum == @r[cgroup])) {
      return;
    }
    if ($bad) {
      signal("KILL");
      printf("K %d %llu %llu %d\\n", pid, cgroup, $i->i_ino, $bad);
    } else {
      signal(19);  // SIGSTOP
      @p[pid] = 1;
      printf("S %d %llu GEN\\n", pid, cgroup);
    }
  }
}
// zero drift for code mapped from files (the loader's shared objects, LD_PRELOAD's, dlopen's): a file changed after
// the container started is killed at mmap's entry; the signal is delivered as the call returns, before its code runs
tracepoint:syscalls:sys_enter_mmap /(args->prot & 4) && (@g[cgroup] & 2)/ {
  $fdt = curtask->files->fdt;
  if ((uint64)args->fd >= (uint64)$fdt->max_fds) { return; }  // also an anonymous mapping's fd -1
  $f = (struct file *)*(uint64 *)kptr((uint64)$fdt->fd + 8 * (uint64)args->fd);
  if ($f == 0) { return; }
  $fi = $f->f_inode;
  if ((uint64)$fi->i_ctime_sec * 1000000000 + ($fi->i_ctime_nsec & 0x7fffffff) > @s[cgroup]) {
    signal("KILL");
    printf("K %d %llu %llu 4\\n", pid, cgroup, $fi->i_ino);
  }
}
tracepoint:signal:signal_generate /@p[args->pid]/ {
  if (args->sig == 18 && pid == $1) { delete(@p[args->pid]); }  // the answerer's SIGCONT: released
  if (args->sig == 9 && pid != args->pid) { delete(@p[args->pid]); }  // killed by someone: not the trap
}
// the hold trap's SIGKILL (holdtrap.py: a held process made a system call, someone else resumed it) is sent from
// the trap's own BPF program, so this program's signal_generate probe does not run for it (one BPF program per
// CPU at a time on perf tracepoints): a process still held that exits killed is the trap's
tracepoint:sched:sched_process_exit {  // one program for both checks (each probe is a program run at every exit)
  if (pid == $1) { exit(); }
  if (@p[pid]) {
    if (curtask->exit_code == 9) { printf("E %d\\n", pid); }
    delete(@p[pid]);
  }
}
// bpftrace prints none of the maps at exit
END { clear(@g); clear(@s); clear(@a); clear(@i); clear(@c); clear(@m); clear(@r); clear(@p); }
""".replace("GEN", str(gen)).replace(
        "INIT_USER_NS", str(INIT_USER_NS)).replace("ARGV0_MAX", str(ARGV0_MAX)).replace(
        "ADDR32_END", str(ADDR32_END)))
    return "\n".join(lines) + "\n"


@dataclass
class _Run:
    """One guard program (the compiled loader or bpftrace) and its number, whose lines carry it."""

    proc: subprocess.Popen[str]
    gen: int
    rules_file: str
    keys_max: int  # its maps' size: a plan that fits is written in place
    ready: threading.Event = field(default_factory=threading.Event)
    updates: int = 0  # plans written in place since it started
    trap: holdtrap.HoldTrap | None = None  # its hold trap (holdtrap.py), attached to its @p


class ExecGuard:
    """Keeps one guard program running for the current set of guarded cgroups, and its script answerer.

    The program is the compiled guard when it builds here and `compiled` (None: unless
    KUBEGUARD_EXEC_GUARD_COMPILED=0) allows it, else bpftrace's; chosen at the first start, logged once
    (`backend`, `backend_reason`). A compiled guard that does not start falls back to bpftrace for good.

    The answerer (`kubeguard.policy.script_answer`) is started with the first program and lives while
    programs run, so every program has the same releasing pid (``$1``) and a held interpreter seen by
    both programs while the plan changes is released by one answer. It is started even when no cgroup
    has interpreter rules (it passes the programs' lines on). The answerer lives as long as the thread
    that started it (PR_SET_PDEATHSIG): in the agent, the `Enforcer` thread.
    """

    def __init__(self, bpftrace: str | None = None, compiled: bool | None = None) -> None:
        self.bpftrace = bpftrace or shutil.which("bpftrace") or ""
        self.compiled = compiled
        self.backend = ""  # COMPILED or BPFTRACE once a program was started
        self.backend_reason = ""
        self._built: Built | None = None
        self.current: _Run | None = None
        self.guarded: list[GuardedCgroup] = []
        self.answerer: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.script_kills = 0
        self.early_kills = 0  # held interpreters that made a system call before the answer
        self.restarts = 0  # programs started again after they or the answerer exited
        self.new_holds = 0  # execs held in a container the plan lacked (N lines)
        # judges those: (pid, cgroup id), called from the reader thread; None: they are killed (fail closed)
        self.on_new_container: Callable[[int, int], None] | None = None
        self._lock = threading.Lock()
        self._pipe = -1  # our write end of the answerer's stdin (the programs write there too)
        self._reader: threading.Thread | None = None
        self._runs: dict[int, _Run] = {}  # program number -> run, for the READY lines
        self._gen = 0
        self._dir = ""

    def apply(self, guarded: list[GuardedCgroup]) -> None:
        """Enforce exactly `guarded`; raises ExecGuardError. A no-op when unchanged and running: a program or
        answerer that exited (killed, out of memory) is started again for the same plan."""
        unchanged = sorted(guarded, key=lambda g: g.cgroup_id) == sorted(self.guarded, key=lambda g: g.cgroup_id)
        if unchanged and (not guarded or self.running):
            return
        if unchanged:
            self.restarts += 1
            log.warning("exec guard: %s; starting it again", self._exited())
        run = self.current
        if (not unchanged and run is not None and guarded and run.proc.poll() is None
                and map_keys_max(guarded) <= run.keys_max):
            try:
                self._update(run, guarded)
                self.guarded = list(guarded)
                return
            except BpfError as exc:  # a new program with the whole plan, as when the maps are too small
                log.warning("exec guard: plan not written in place (%s); starting a new program", exc)
        old = self.current
        self.current = self._start(guarded) if guarded else None
        self.guarded = list(guarded)
        if old is not None:
            self._stop(old)
        if self.current is None:
            self._stop_answerer()

    def _choose(self) -> None:
        """Pick the backend at the first start and log it once."""
        if self.backend:
            return
        self._built, self.backend_reason = choose_backend(self.compiled)
        self.backend = COMPILED if self._built is not None else BPFTRACE
        if self._built is not None:
            log.info("exec guard: compiled program (%s)", self.backend_reason)
        else:
            log.warning("exec guard: bpftrace program (perf tracepoints, slower per exec): %s", self.backend_reason)

    def _start(self, guarded: list[GuardedCgroup]) -> _Run:
        self._choose()
        try:
            return self._start_program(guarded)
        except ExecGuardError as exc:
            answerer_gone = self.answerer is None or self.answerer.poll() is not None  # not the program's fault
            if self.backend != COMPILED or not self.bpftrace or answerer_gone:
                raise
            self._built, self.backend, self.backend_reason = None, BPFTRACE, f"compiled guard did not start: {exc}"
            log.warning("exec guard: falling back to the bpftrace program: %s", exc)
            return self._start_program(guarded)

    def _command(self, answerer_pid: int, keys_max: int) -> tuple[list[str], dict[str, str] | None]:
        """The program's command line and environment (None: ours)."""
        if self._built is not None:
            return [str(self._built.loader), str(self._built.bpf_object), str(answerer_pid), str(self._gen),
                    str(keys_max)], None
        return ([self.bpftrace, "--unsafe", "-B", "line", "-e", program(self._gen), str(answerer_pid)],
                {**os.environ, "BPFTRACE_MAP_KEYS_MAX": str(keys_max)})

    def _start_program(self, guarded: list[GuardedCgroup]) -> _Run:
        if self._built is None and not self.bpftrace:
            raise ExecGuardError("exec guard: bpftrace not found (install Debian's bpftrace)")
        answerer = self._answerer()
        self._gen += 1
        rules_file = os.path.join(self._dir, f"rules-{self._gen}.json")
        if not self._send_rules(self._gen, rules_file, guarded):  # known before the program's first line
            raise ExecGuardError("exec guard did not start: the script answerer exited")
        keys_max = map_keys_max(guarded)
        cmd, env = self._command(answerer.pid, keys_max)
        proc = subprocess.Popen(cmd, stdout=self._pipe, stderr=subprocess.PIPE, text=True, env=env)
        run = _Run(proc, self._gen, rules_file, keys_max)
        self._runs[run.gen] = run
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not run.ready.wait(0.1):
            if run.proc.poll() is not None or answerer.poll() is not None or time.monotonic() > deadline:
                if run.proc.poll() is None:
                    run.proc.kill()
                err = [line for line in (run.proc.stderr.read() if run.proc.stderr else "").splitlines()
                       if "ERROR" in line]
                self._stop(run)
                what = err[-1].strip() if err else "script answerer exited" if answerer.poll() is not None \
                    else "timeout"
                raise ExecGuardError(f"exec guard did not start: {what}")
        try:  # before the plan: no process is held without it; none at all while no interpreter can be held
            run.trap = self._trap(proc.pid) if holds(guarded) else None
        except BpfError as exc:
            self._stop(run)
            raise ExecGuardError(f"exec guard: no hold trap: {exc}") from None
        try:
            self._write(proc.pid, {}, plan_entries(guarded))
        except BpfError as exc:
            self._stop(run)
            raise ExecGuardError(f"exec guard: could not write its plan: {exc}") from None
        return run

    @staticmethod
    def _trap(pid: int) -> holdtrap.HoldTrap:
        """Attach the hold trap to the held-process map of program `pid`. Raises BpfError."""
        fds = process_maps(pid, {"AT_p"})
        try:
            if "AT_p" not in fds:
                raise BpfError(f"map @p not found in guard program pid {pid}")
            return holdtrap.attach(fds["AT_p"])
        finally:
            for fd in fds.values():
                os.close(fd)

    def _update(self, run: _Run, guarded: list[GuardedCgroup]) -> None:
        """Change the running program's plan to `guarded` in place (the answerer's rules first); raises BpfError."""
        if not self._send_rules(run.gen, run.rules_file, guarded):
            raise BpfError("the script answerer exited")
        if run.trap is None and holds(guarded):  # the first interpreter that can be held: the trap before it
            run.trap = self._trap(run.proc.pid)
        # every key starts with its cgroup: the cgroups whose rules did not change keep their entries as they are
        old = {g.cgroup_id: g for g in self.guarded}
        new = {g.cgroup_id: g for g in guarded}
        self._write(run.proc.pid, plan_entries([g for cid, g in old.items() if new.get(cid) != g]),
                    plan_entries([g for cid, g in new.items() if old.get(cid) != g]))
        run.updates += 1

    @staticmethod
    def _write(pid: int, old: dict[str, dict[Key, int]], new: dict[str, dict[Key, int]]) -> None:
        """Turn the maps of the running program `pid` from `old` into `new`: the entries added or changed first (a
        cgroup's mode last, turning it on), then those removed (its mode first), so each exec sees a cgroup's
        old rules or its new ones, never none."""
        fds = process_maps(pid, {f"AT_{name}" for name in MAPS})
        try:
            missing = [name for name in MAPS if f"AT_{name}" not in fds]
            if missing:
                raise BpfError(f"maps {', '.join('@' + m for m in missing)} not found in guard program pid {pid}")
            for name in reversed(MAPS):
                for key, value in new[name].items():
                    if old.get(name, {}).get(key) != value:
                        map_update(fds[f"AT_{name}"], pack_key(key), struct.pack("<q", value))
            for name in MAPS:
                for key in old.get(name, {}).keys() - new[name].keys():
                    map_delete(fds[f"AT_{name}"], pack_key(key))
        finally:
            for fd in fds.values():
                os.close(fd)

    def _send_rules(self, gen: int, rules_file: str, guarded: list[GuardedCgroup]) -> bool:
        """Write the script rules of program `gen` (replacing the file whole) and announce them to the answerer
        (``P`` line); False when it is gone."""
        with tempfile.NamedTemporaryFile("w", dir=self._dir, suffix=".tmp", delete=False, encoding="utf-8") as f:
            f.write(rules_json({g.cgroup_id: g.scripts for g in guarded}))
        os.replace(f.name, rules_file)
        return self._send(f"P {gen} {rules_file}")

    def _answerer(self) -> subprocess.Popen[bytes]:
        """The running answerer, started when there is none; raises ExecGuardError."""
        if self.answerer is not None and self.answerer.poll() is None:
            return self.answerer
        self._stop_answerer()
        self._dir = tempfile.mkdtemp(prefix="kubeguard-execguard-")
        read, self._pipe = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.answerer = subprocess.Popen([sys.executable, "-m", "kubeguard.policy.script_answer",
                                              str(os.getpid())], stdin=read, stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise ExecGuardError(f"exec guard: the script answerer did not start: {exc}") from exc
        finally:
            os.close(read)
        self._reader = threading.Thread(target=self._read, args=(self.answerer,), name="execguard", daemon=True)
        self._reader.start()
        return self.answerer

    def _send(self, line: str) -> bool:
        """Write one line to the answerer (whole: shorter than PIPE_BUF); False when it is gone."""
        try:
            os.write(self._pipe, (line + "\n").encode())
        except OSError:
            return False
        return True

    def _read(self, answerer: subprocess.Popen[bytes]) -> None:
        if answerer.stdout is None:
            return
        for raw in answerer.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("READY "):
                run = self._runs.get(int(line.split()[1])) if line.split()[1].isdigit() else None
                if run is not None:
                    run.ready.set()
            elif line.startswith(("K ", "E ")):
                with self._lock:
                    self.kills += 1
                    self.early_kills += line.startswith("E ")
                words = line.split()
                if len(words) == 5 and words[4] == "8":
                    log.warning("exec guard: killed pid %s, a 32-bit interpreter (inode %s) it would hold until its "
                                "script is read: the hold trap does not see 32-bit system calls", words[1], words[3])
                elif len(words) == 5 and words[4] == "4":
                    log.info("exec guard: killed pid %s mapping inode %s executable (mmap or mprotect), changed "
                             "after its container started (zero drift)", words[1], words[3])
            elif line.startswith("N "):
                self._new_container(line)
            elif line.startswith("X "):
                _, pid, script = line.rstrip("\n").split(" ", 2)
                with self._lock:
                    self.kills += 1
                    self.script_kills += 1
                log.info("exec guard: killed pid %s running script %s", pid, script)
            elif line.startswith("W "):
                log.warning("exec guard: %s", line[2:].strip())

    def _new_container(self, line: str) -> None:
        """An exec held in a pod's container the plan lacks: to `on_new_container`, or killed when none judges."""
        words = line.split()
        if len(words) != 4 or not words[1].isdigit() or not words[2].isdigit():
            log.warning("exec guard: unreadable line %r", line[:200])
            return
        pid, cgroup = int(words[1]), int(words[2])
        with self._lock:
            self.new_holds += 1
        if self.on_new_container is not None:
            self.on_new_container(pid, cgroup)
            return
        self.kill_held(pid)

    def kill_held(self, pid: int) -> None:
        """SIGKILL a process held at exec (it never runs its own code); counted as a kill."""
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            return
        with self._lock:
            self.kills += 1

    def release_held(self, pid: int) -> bool:
        """Have the answerer release a held `pid` (only its SIGCONT does); False when it is gone (pid stays held)."""
        return self._send(f"R {pid}")

    def judge_held(self, pid: int, cgroup: int) -> bool:
        """Have the answerer judge a held `pid` by the current plan's rules for `cgroup` (an allowed interpreter:
        its script; anything else: released); False when no program or answerer runs."""
        run = self.current
        return run is not None and self._send(f"S {pid} {cgroup} {run.gen}")

    def _stop(self, run: _Run) -> None:
        if run.proc.poll() is None:
            run.proc.terminate()
            try:
                run.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
        if run.trap is not None:
            run.trap.close()
            run.trap = None
        self._send(f"D {run.gen}")  # after every line of the program: its rules go
        self._runs.pop(run.gen, None)
        if run.proc.stderr is not None:
            run.proc.stderr.close()
        try:
            os.unlink(run.rules_file)
        except OSError:
            pass

    def _stop_answerer(self) -> None:
        """End the answerer (end of its stdin once no program holds it open) and its reader."""
        answerer, self.answerer = self.answerer, None
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        if answerer is not None:
            try:
                answerer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                answerer.kill()
                answerer.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if answerer is not None and answerer.stdout is not None:
            answerer.stdout.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""

    def _exited(self) -> str:
        """What of a guard that should run has exited, for the log."""
        parts = []
        if self.current is None or self.current.proc.poll() is not None:
            rc = None if self.current is None else self.current.proc.returncode
            parts.append(f"the guard program exited ({rc})")
        if self.answerer is None or self.answerer.poll() is not None:
            rc = None if self.answerer is None else self.answerer.returncode
            parts.append(f"the script answerer exited ({rc})")
        return " and ".join(parts) or "the guard is not running"

    @property
    def running(self) -> bool:
        return (self.current is not None and self.current.proc.poll() is None
                and self.answerer is not None and self.answerer.poll() is None)

    def close(self) -> None:
        if self.current is not None:
            self._stop(self.current)
            self.current = None
        self._stop_answerer()
        self.guarded = []
