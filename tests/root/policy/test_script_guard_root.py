"""Protect mode kills an unknown script before any of its code runs (#13): the exec guard holds an allowed
interpreter at exec (SIGSTOP), the agent checks the script its argv names against spec.scripts and kills
or releases it. `sh new.sh`, `python3 new.py` and a `#!/bin/sh` script exec'd directly, each of which first
creates a marker, leave no marker; a SIGCONT from inside the pod, or from the agent itself (only the script
answerer's is honoured), cannot release a held script early; the allowed script keeps running the whole time
(every one of its runs completes) and `sh -c` is released. A script allowed by its exact path and
named so by argv[1] runs with no hold at all: it completes while the answerer is stopped, as does `sh -c`
(argv[1] exactly -c to a shell: code on the command line) and, for a shell, `sh -e SCRIPT` (argv[1] only POSIX
options that take no argument, argv[2] the script); any other form is held until the answerer decides."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require, wait_reported

from kubeguard.policy.document import ScriptRule
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
PYTHON = os.path.realpath("/usr/bin/python3")
SH = os.path.realpath("/bin/sh")


def wait_for(what: str, done, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def state_of(pid: int, argv: list[str]) -> str:
    """The state letter of `pid` once it runs exactly `argv` (its exec happened), else ""."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
    return state if cmdline == [a.encode() for a in argv] else ""


def test_unknown_scripts_are_killed_before_they_run(podlab: PodLab) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))
    guard = ExecGuard()
    loop: subprocess.Popen[str] | None = None
    try:
        markers = work / "markers"
        markers.mkdir()
        known = work / "known.sh"
        known.write_text(f"echo run >> {work}/known.log\n")
        (work / "new.sh").write_text(f"touch {markers}/sh\n")
        (work / "new.py").write_text(f"open('{markers}/py', 'w').close()\n")
        agent_sh = work / "agent.sh"  # allowed, released by the answerer only
        agent_sh.write_text(f"touch {markers}/agent\n")
        direct = work / "direct.sh"
        direct.write_text(f"#!/bin/sh\ntouch {markers}/direct\n")
        direct.chmod(0o755)
        pod = podlab.pod("scripts")
        allowed = frozenset(os.stat(p).st_ino for p in (NSENTER, SH, PYTHON, "/usr/bin/touch"))
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed, interpreter_inodes=frozenset(
            os.stat(p).st_ino for p in (SH, PYTHON)), scripts=(ScriptRule(str(known)), ScriptRule(str(agent_sh))))])
        # the learned script, run again and again for the whole test (each run is a new interpreter exec)
        # (by its exact path it runs without a hold; `-e` first, the answerer releases it)
        loop = pod.popen([SH, "-c", f"while true; do {SH} {known} || echo FAIL >> {work}/fail; "
                                    f"{SH} -e {known} || echo FAIL >> {work}/fail; done"], stdout=subprocess.DEVNULL)
        log = work / "known.log"
        wait_for("the known script's first runs", lambda: log.exists() and len(log.read_text().split()) > 5)
        cases = {"sh": [SH, str(work / "new.sh")], "py": [PYTHON, str(work / "new.py")], "direct": [str(direct)],
                 "relative": [SH, "-e", "new.sh"]}
        for name, argv in cases.items():
            before = guard.script_kills
            run = pod.run(argv, cwd=work)
            assert run.returncode == -signal.SIGKILL, (name, run.returncode, run.stderr)
            wait_for(f"the report of {name}", lambda b=before: guard.script_kills > b)  # read from the answerer
            assert guard.script_kills == before + 1, (name, guard.kills, guard.early_kills)
        # a SIGCONT sent from inside the pod while the answerer has not decided yet (it is stopped here, after it
        # released the racing shell, which then waits for a line): the held script is killed at its first system
        # call and never runs
        assert guard.answerer is not None
        early = guard.early_kills
        race = f"read go; {SH} {work}/new.sh & p=$!; while kill -CONT $p 2>/dev/null; do :; done; wait $p"
        racer = pod.popen([SH, "-c", race], cwd=work, stdin=subprocess.PIPE, text=True)
        wait_for("the racing shell released, reading", lambda: state_of(racer.pid, [SH, "-c", race]) == "S")
        os.kill(guard.answerer.pid, signal.SIGSTOP)
        try:
            racer.communicate("go\n", timeout=30)
        finally:
            os.kill(guard.answerer.pid, signal.SIGCONT)
        raced = racer
        assert raced.returncode != 0
        wait_for("the early kill's report", lambda: guard.early_kills > early)
        assert guard.early_kills == early + 1
        # an allowed script held while the answerer is stopped, and a SIGCONT from the agent's own pid (this
        # process, which owns the guard): only the answerer's SIGCONT releases, so it is killed at its first
        # system call (the agent's threads no longer answer)
        os.kill(guard.answerer.pid, signal.SIGSTOP)
        try:
            held = pod.popen([SH, "-e", str(agent_sh)])  # an option first: held, the answerer decides
            wait_for("the allowed script held at exec", lambda: state_of(held.pid, [SH, "-e", str(agent_sh)]) == "T")
            early = guard.early_kills
            os.kill(held.pid, signal.SIGCONT)
            assert held.wait(timeout=30) == -signal.SIGKILL
        finally:
            os.kill(guard.answerer.pid, signal.SIGCONT)
        wait_for("the agent's SIGCONT early kill's report", lambda: guard.early_kills > early)
        assert guard.early_kills == early + 1
        released = pod.run([SH, "-c", "echo released"])  # code on the command line names no script file
        assert released.returncode == 0 and released.stdout == "released\n"
        assert list(markers.iterdir()) == []  # no unknown script ran any of its code
        runs = len(log.read_text().split())
        wait_for("more runs of the known script", lambda: len(log.read_text().split()) > runs + 5)
        assert loop.poll() is None, "the known script's loop ended"
        assert not (work / "fail").exists(), "the known script was blocked"  # 0 false blocks
    finally:
        if loop is not None and loop.poll() is None:
            loop.kill()
            loop.wait()
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


def test_exactly_named_allowed_script_runs_without_a_hold(podlab: PodLab) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))
    guard = ExecGuard()
    try:
        known = work / "known.sh"
        known.write_text(f"#!/bin/sh\necho run >> {work}/known.log\n")
        known.chmod(0o755)
        (work / "new.sh").write_text(f"touch {work}/new.ran\n")
        pod = podlab.pod("direct")
        guard.apply([GuardedCgroup(pod.cgroup_id, frozenset(os.stat(p).st_ino for p in (NSENTER, SH, PYTHON)),
                                   interpreter_inodes=frozenset({os.stat(SH).st_ino}),
                                   inline_code_inodes=frozenset({os.stat(SH).st_ino}),
                                   shell_inodes=frozenset({os.stat(SH).st_ino}),
                                   scripts=(ScriptRule(str(known)),))])
        assert guard.answerer is not None
        os.kill(guard.answerer.pid, signal.SIGSTOP)  # nothing held is answered until it continues
        try:
            assert pod.run([str(known)]).returncode == 0  # #! exec'd by its path: argv is [sh, known]
            assert pod.run([SH, str(known)]).returncode == 0
            inline = pod.run([SH, "-c", "echo inline"])  # -c to a shell: code on the command line, no hold
            assert inline.returncode == 0 and inline.stdout == "inline\n"
            # a shell's plain options (no argument, nothing read: -e, -eux) then the allowed script: no hold
            assert pod.run([SH, "-e", str(known)]).returncode == 0
            assert pod.run([SH, "-eux", str(known)]).returncode == 0
            held = {name: pod.popen(argv, cwd=work, stdin=subprocess.DEVNULL) for name, argv in (
                ("option with a value", [SH, "-o", "errexit", str(known)]), ("relative", [SH, "known.sh"]),
                ("option reading stdin", [SH, "-es", str(known)]),  # s: commands from stdin, the answerer decides
                ("two option words", [SH, "-e", "-x", str(known)]),  # only argv[1] is looked at
                ("plain option, unknown script", [SH, "-e", str(work / "new.sh")]),
                ("-c with another option", [SH, "-ec", "true"]),  # only argv[1] exactly -c goes unheld
                ("unknown", [SH, str(work / "new.sh")]),
                # argv[0] longer than the program looks for its end, its tail spelling the allowed path where
                # argv[1] would start: not taken for argv[1], held
                ("long argv[0]", [PYTHON, "-c", f"import os; os.execv({SH!r}, ['A' * 257 + {str(known)!r}, "
                                                f"{str(work / 'new.sh')!r}])"]))}
            for name, proc in held.items():
                wait_for(f"{name} held at exec", lambda p=proc: Path(f"/proc/{p.pid}/stat").read_text().rsplit(
                    ")", 1)[1].split()[0] == "T" and Path(f"/proc/{p.pid}/exe").resolve() == Path(SH))
        finally:
            os.kill(guard.answerer.pid, signal.SIGCONT)
        for name in ("option with a value", "relative", "option reading stdin", "two option words",
                     "-c with another option"):
            assert held[name].wait(timeout=30) == 0, name
        assert held["unknown"].wait(timeout=30) == -signal.SIGKILL
        assert held["plain option, unknown script"].wait(timeout=30) == -signal.SIGKILL
        assert held["long argv[0]"].wait(timeout=30) == -signal.SIGKILL and not (work / "new.ran").exists()
        assert len((work / "known.log").read_text().split()) == 7  # stdin (-es) runs no script
        assert wait_reported(lambda: guard.script_kills, 3, "script kills") == 3 and guard.early_kills == 0
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


def test_the_hold_trap_is_attached_once_an_interpreter_can_be_held(podlab: PodLab) -> None:
    """The trap runs at every system call of the node: a plan that can hold nothing (no allowed interpreter) goes
    without it; the first plan that can hold a process attaches it before its entries are written, and a held
    interpreter resumed by anyone but the answerer then dies at its first system call."""
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))
    guard = ExecGuard()
    try:
        script = work / "known.sh"
        script.write_text(f"echo run >> {work}/known.log\n")
        pod = podlab.pod("trap")
        allowed = frozenset(os.stat(p).st_ino for p in (NSENTER, SH))
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed)])
        assert guard.current is not None and guard.current.trap is None  # nothing can be held
        assert pod.run([SH, "-e", str(script)]).returncode == 0  # sh is merely allowed here
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed, interpreter_inodes=frozenset({os.stat(SH).st_ino}),
                                   scripts=(ScriptRule(str(script)),))])
        assert guard.current.updates == 1 and guard.current.trap is not None  # written in place, trap first
        assert guard.answerer is not None
        os.kill(guard.answerer.pid, signal.SIGSTOP)
        try:
            held = pod.popen([SH, "-e", str(script)])
            wait_for("the script held at exec", lambda: state_of(held.pid, [SH, "-e", str(script)]) == "T")
            early = guard.early_kills
            os.kill(held.pid, signal.SIGCONT)  # not the answerer's
            assert held.wait(timeout=30) == -signal.SIGKILL
        finally:
            os.kill(guard.answerer.pid, signal.SIGCONT)
        wait_for("the early kill's report", lambda: guard.early_kills > early)
        assert (work / "known.log").read_text() == "run\n"  # only the run before the hold
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)


def elf32_creating(marker: Path) -> bytes:
    """A static 32-bit (i386) program that creates `marker` (open O_CREAT through int 0x80) and exits 0."""
    base, code_at = 0x08048000, 52 + 32  # after the ELF header and the one program header
    path = str(marker).encode() + b"\0"
    code = (b"\xb8\x05\x00\x00\x00" + b"\xbb" + struct.pack("<I", base + code_at + 31)  # eax = open, ebx = path
            + b"\xb9\x41\x00\x00\x00" + b"\xba\xa4\x01\x00\x00" + b"\xcd\x80"  # O_WRONLY | O_CREAT, 0644; int 0x80
            + b"\xb8\x01\x00\x00\x00" + b"\x31\xdb" + b"\xcd\x80")  # exit(0)
    size = code_at + len(code) + len(path)
    header = b"\x7fELF\x01\x01\x01" + bytes(9) + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + code_at, 52, 0, 0,
                                                               52, 32, 1, 0, 0, 0)
    segment = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)  # PT_LOAD, read + execute
    return header + segment + code + path


def test_a_32_bit_interpreter_is_killed_not_held(podlab: PodLab) -> None:
    """The hold trap is on the syscall tracepoints, which do not report a 32-bit process's calls: an allowed
    interpreter the guard would hold is killed when it is 32-bit (before its first instruction: no marker),
    and runs when the guard has no reason to hold it."""
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))
    guard = ExecGuard()
    try:
        interpreter = work / "interp32"
        interpreter.write_bytes(elf32_creating(work / "ran"))
        interpreter.chmod(0o755)
        pod = podlab.pod("i386")
        allowed = frozenset(os.stat(p).st_ino for p in (NSENTER, interpreter))
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed)])
        require(pod.run([str(interpreter)]).returncode == 0 and (work / "ran").exists(),
                "32-bit programs (CONFIG_IA32_EMULATION)")
        (work / "ran").unlink()
        guard.apply([GuardedCgroup(pod.cgroup_id, allowed,
                                   interpreter_inodes=frozenset({os.stat(interpreter).st_ino}))])
        kills = guard.kills
        assert pod.run([str(interpreter), str(work / "script")]).returncode == -signal.SIGKILL
        assert not (work / "ran").exists()
        wait_for("the kill's report", lambda: guard.kills > kills)
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)
