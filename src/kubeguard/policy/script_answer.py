"""Answering the interpreters the exec guard holds, from a small process of its own.

The exec guard's programs (compiled or bpftrace) stop (SIGSTOP) an allowed interpreter at exec until its script is
checked (`execguard`). Answered from a thread of the agent, that check waited for the GIL behind the
agent's sensor and pipeline threads (2 to 16 ms in 7 % of holds, #13); this process has one thread and
nothing else to do. It runs as ``python -m kubeguard.policy.script_answer AGENT_PID``, started by
`ExecGuard`; every guard program gets this process's pid as ``$1`` (only its SIGCONT releases a held
interpreter) and writes its lines to this process's stdin. The agent writes to that same pipe (lines
shorter than PIPE_BUF are written whole, so nothing interleaves). Lines in:

- ``P <gen> <file>`` (agent): the script rules of guard program number <gen>, a JSON file
  ``{"<cgroup id>": [[path, action], ...]}`` (`rules_json`); written before that program starts, so
  they are known before any of its lines;
- ``D <gen>`` (agent): program <gen> has stopped; its rules are dropped;
- ``R <pid>`` (agent): release pid, held in a new container the agent has judged (SIGCONT);
- ``S <pid> <cgroup id> <gen>`` (a program): pid is held at exec. Its /proc/PID/{exe,cwd,cmdline} name
  the script (`script_of_argv`); SIGCONT when none is named or the rules of that cgroup in program
  <gen> allow it (`script_allowed`), else SIGKILL. A /proc read error, or a script with no rules
  known for its cgroup: SIGKILL (never released unchecked);
- ``READY <gen>``, ``K ...``, ``E ...``, ``N ...`` (a program): passed on as they are (``N <pid> <cgroup id> <gen>``:
  pid is held at exec in a pod's container the plan lacks; the agent plans that container, then kills pid or
  writes an ``S`` line for it here).

Lines out (stdout, to the agent): those passed on, ``X <pid> <script>`` for each script killed
(written before the SIGKILL; a backslash or newline in the path is escaped) and ``W <text>`` for a
line or rules file it could not use. It exits at end of stdin, and is killed (PR_SET_PDEATHSIG) when
the agent's thread that started it ends; the guard programs exit when it does.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Callable

from kubeguard.policy.scripts import ScriptRule, script_allowed, script_of_argv

SIGKILL, SIGCONT = 9, 18
PR_SET_PDEATHSIG = 1
Rules = dict[int, tuple[ScriptRule, ...]]  # cgroup id -> its script rules


def rules_json(rules: Rules) -> str:
    """The text of a rules file (``P`` line) for `rules`."""
    return json.dumps({str(cgroup): [[r.path, r.action] for r in scripts] for cgroup, scripts in rules.items()})


def parse_rules(text: str) -> Rules:
    """The rules of a rules file; raises ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("rules: expected an object")
    rules: Rules = {}
    for cgroup, scripts in data.items():
        if not isinstance(scripts, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r) for r in scripts):
            raise ValueError(f"rules of cgroup {cgroup}: expected [[path, action], ...]")
        rules[int(cgroup)] = tuple(ScriptRule(path, action) for path, action in scripts)
    return rules


def release(exe: str, argv: list[str], cwd: str, rules: tuple[ScriptRule, ...] | None) -> tuple[bool, str | None]:
    """Whether a held interpreter (`exe`, its whole `argv`, `cwd`) may run, and the script it names."""
    script = script_of_argv(exe, argv[1:], cwd, argv[0] if argv else "")
    return script is None or (rules is not None and script_allowed(rules, script)), script


def escape(text: str) -> str:
    """`text` on one line: backslash and newline escaped (``\\\\``, ``\\n``)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def read_proc(pid: int) -> tuple[str, list[str], str]:
    """(exe, argv, cwd) of `pid` from /proc; raises OSError."""
    exe = os.readlink(f"/proc/{pid}/exe")
    cwd = os.readlink(f"/proc/{pid}/cwd")
    fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY)
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    finally:
        os.close(fd)
    return exe, [a.decode(errors="surrogateescape") for a in data.split(b"\0")[:-1]], cwd


class Answerer:
    """Handles the lines in; `say` writes one line out, `kill` signals a process."""

    def __init__(self, say: Callable[[str], None], kill: Callable[[int, int], None]) -> None:
        self.say = say
        self.kill = kill
        self.rules: dict[int, Rules] = {}  # program number -> its rules

    def handle(self, line: str) -> None:
        """One line in (without its newline)."""
        words = line.split(" ")
        try:
            if words[0] == "S" and len(words) == 4:
                pid, cgroup, gen = int(words[1]), int(words[2]), int(words[3])
                self.answer(pid, self.rules.get(gen, {}).get(cgroup))
            elif words[0] in ("READY", "K", "E", "N"):
                self.say(line)
            elif not line or line.startswith(("@", "Attaching ")):
                pass  # bpftrace's own lines: attaching, its maps when it exits
            elif words[0] == "P" and len(words) == 3:
                with open(words[2], encoding="utf-8") as f:
                    self.rules[int(words[1])] = parse_rules(f.read())
            elif words[0] == "R" and len(words) == 2:
                self.kill(int(words[1]), SIGCONT)
            elif words[0] == "D" and len(words) == 2:
                self.rules.pop(int(words[1]), None)
            else:
                self.say(f"W unreadable line {line[:200]!r}")
        except (OSError, ValueError) as exc:
            self.say(f"W {words[0]} line {line[:200]!r}: {exc}")

    def answer(self, pid: int, rules: tuple[ScriptRule, ...] | None) -> None:
        """SIGCONT or SIGKILL the held `pid` by the script it names."""
        try:
            exe, argv, cwd = read_proc(pid)
        except OSError:
            self.kill(pid, SIGKILL)  # gone already, or unreadable: never released unchecked
            return
        allowed, script = release(exe, argv, cwd, rules)
        if allowed:
            self.kill(pid, SIGCONT)
            return
        self.say(f"X {pid} {escape(script or '')}")
        self.kill(pid, SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _say(line: str) -> None:
    data = (line + "\n").encode(errors="surrogateescape")
    while data:
        data = data[os.write(1, data):]


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the thread that started it ends; exit now if `parent` is gone already."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if parent and os.getppid() != parent:
        raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Answer held interpreters until end of stdin."""
    _die_with_parent(int(argv[0]) if argv else 0)
    answerer = Answerer(_say, _signal)
    pending = b""
    while chunk := os.read(0, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            answerer.handle(line.decode(errors="surrogateescape"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # the agent is gone
        sys.exit(0)
