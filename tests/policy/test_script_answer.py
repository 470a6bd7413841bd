"""The script answerer (#13): its line protocol and decision, on real processes of this test (no root needed):
a held interpreter named by an ``S`` line is released (SIGCONT) or killed (SIGKILL, ``X`` line first) by the
rules of its cgroup in the program that held it; unknown program, unknown cgroup or a /proc read error kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubeguard.policy.script_answer import Answerer, escape, parse_rules, release, rules_json
from kubeguard.policy.scripts import ScriptRule

SH = os.path.realpath("/bin/sh")
REPO = Path(__file__).resolve().parents[2]


def wait_for(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts ``sh <tmp_path>/<name>``, a script waiting for a line (a stand-in for a held interpreter)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        (tmp_path / name).write_text("read x\n")
        proc = subprocess.Popen([SH, name], cwd=tmp_path, stdin=subprocess.PIPE)
        started.append(proc)
        # Popen returns once the exec closed its close-on-exec pipe, which the kernel does before it sets up the
        # new argv: until then /proc/PID/cmdline is empty (read so once in a full run). A held interpreter is
        # stopped after its exec has completed, so the answerer never sees that state.
        wait_for("the shell's argv", lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1:2]
                 == [name.encode()])
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def say(self, line: str) -> None:
        self.events.append(("say", line))

    def kill(self, pid: int, sig: int) -> None:
        self.events.append(("kill", (pid, sig)))


def answerer_with(tmp_path: Path, gen: int, rules: dict[int, tuple[ScriptRule, ...]]) -> tuple[Answerer, Recorder]:
    rec = Recorder()
    answerer = Answerer(rec.say, rec.kill)
    (tmp_path / "rules.json").write_text(rules_json(rules))
    answerer.handle(f"P {gen} {tmp_path / 'rules.json'}")
    assert rec.events == []
    return answerer, rec


def test_rules_round_trip_and_bad_files() -> None:
    rules = {7: (ScriptRule("/app/*.sh"), ScriptRule("/app/bad.sh", action="deny")), 9: ()}
    assert parse_rules(rules_json(rules)) == rules
    for bad in ("[]", '{"7": [["/a"]]}', '{"7": [[1, "allow"]]}', '{"x": []}', "{"):
        with pytest.raises(ValueError):
            parse_rules(bad)


def test_release_decision() -> None:
    rules = (ScriptRule("/app/*.sh"), ScriptRule("/app/bad.sh", action="deny"))
    assert release(SH, [SH, "run.sh"], "/app", rules) == (True, "/app/run.sh")
    assert release(SH, [SH, "/app/bad.sh"], "/", rules) == (False, "/app/bad.sh")
    assert release(SH, [SH, "/tmp/new.sh"], "/", rules) == (False, "/tmp/new.sh")
    assert release(SH, [SH, "-c", "echo hi"], "/", rules) == (True, None)  # no script file named
    assert release(SH, [SH, "/app/run.sh"], "/", None) == (False, "/app/run.sh")  # no rules known: killed
    # Alpine: /proc/PID/exe is busybox, argv[0] says which program runs
    assert release("/bin/busybox", ["sh", "/tmp/new.sh"], "/", rules) == (False, "/tmp/new.sh")
    assert release("/bin/busybox", ["/bin/sh", "run.sh"], "/app", rules) == (True, "/app/run.sh")
    assert release("/bin/busybox", ["ls", "/tmp/new.sh"], "/", rules) == (True, None)
    assert escape("/a\\b\nc") == "/a\\\\b\\nc"


def test_held_interpreters_answered_by_their_program_rules(tmp_path: Path, shell) -> None:  # type: ignore[no-untyped-def]
    allowed, unknown = shell("ok.sh"), shell("new.sh")
    answerer, rec = answerer_with(tmp_path, 3, {42: (ScriptRule(str(tmp_path / "ok.sh")),)})
    answerer.handle(f"S {allowed.pid} 42 3")
    assert rec.events == [("kill", (allowed.pid, signal.SIGCONT))]
    rec.events.clear()
    answerer.handle(f"S {unknown.pid} 42 3")
    assert rec.events == [("say", f"X {unknown.pid} {tmp_path / 'new.sh'}"), ("kill", (unknown.pid, signal.SIGKILL))]
    rec.events.clear()
    for line in (f"S {allowed.pid} 43 3", f"S {allowed.pid} 42 4"):  # a cgroup, a program with no rules
        answerer.handle(line)
        assert rec.events == [("say", f"X {allowed.pid} {tmp_path / 'ok.sh'}"), ("kill", (allowed.pid, signal.SIGKILL))]
        rec.events.clear()
    answerer.handle("D 3")  # the program stopped: its rules go
    answerer.handle(f"S {allowed.pid} 42 3")
    assert rec.events[-1] == ("kill", (allowed.pid, signal.SIGKILL))


def test_unreadable_process_is_killed_and_lines_passed_on(tmp_path: Path, shell) -> None:  # type: ignore[no-untyped-def]
    gone = shell("gone.sh")
    gone.kill()
    gone.wait()
    answerer, rec = answerer_with(tmp_path, 1, {42: (ScriptRule(str(tmp_path / "gone.sh")),)})
    answerer.handle(f"S {gone.pid} 42 1")
    assert rec.events == [("kill", (gone.pid, signal.SIGKILL))]  # never released unchecked
    rec.events.clear()
    for line in ("READY 1", "K 10 42 99 1", "E 11", "Attaching 6 probes...", "@g[42]: 1", ""):
        answerer.handle(line)
    assert rec.events == [("say", "READY 1"), ("say", "K 10 42 99 1"), ("say", "E 11")]
    rec.events.clear()
    for line in ("S 1 2", "S x 2 3", "P 2 /nonexistent/rules.json", "Q"):
        answerer.handle(line)
    assert [kind for kind, _ in rec.events] == ["say"] * 4
    assert all(str(text).startswith("W ") for _, text in rec.events), rec.events


def answerer_process(parent: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *sys.path])}
    return subprocess.Popen([sys.executable, "-m", "kubeguard.policy.script_answer", str(parent)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def test_answerer_process_kills_and_exits_at_end_of_input(tmp_path: Path, shell) -> None:  # type: ignore[no-untyped-def]
    unknown = shell("new.sh")
    (tmp_path / "rules.json").write_text(rules_json({5: ()}))
    proc = answerer_process(os.getpid())
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"P 1 {tmp_path / 'rules.json'}\nREADY 1\nS {unknown.pid} 5 1\n".encode())
    proc.stdin.flush()
    assert proc.stdout.readline() == b"READY 1\n"
    assert proc.stdout.readline() == f"X {unknown.pid} {tmp_path / 'new.sh'}\n".encode()
    assert unknown.wait(timeout=30) == -signal.SIGKILL
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_answerer_process_dies_with_its_parent() -> None:
    read, write = os.pipe()  # its stdin: this test keeps the write end open, so no end of input ends it
    code = ("import os, subprocess, sys; sys.path[:0] = sys.argv[2:]; "
            "p = subprocess.Popen([sys.executable, '-m', 'kubeguard.policy.script_answer', str(os.getpid())], "
            "stdin=int(sys.argv[1]), env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)}); "
            "print(p.pid, flush=True); sys.stdin.read()")
    try:
        parent = subprocess.Popen([sys.executable, "-c", code, str(read), str(REPO / "src")], pass_fds=(read,),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        os.close(read)
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_for("the answerer reading its input (past PR_SET_PDEATHSIG)", lambda: reading_a_pipe(child))
        parent.kill()
        parent.wait()
        wait_for("the answerer to exit with its parent", lambda: gone(child))
    finally:
        os.close(write)


def reading_a_pipe(pid: int) -> bool:
    """Whether `pid` waits in a read of a pipe."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "pipe" in wchan and "read" in wchan


def gone(pid: int) -> bool:
    """Whether `pid` has exited (no process, or a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
