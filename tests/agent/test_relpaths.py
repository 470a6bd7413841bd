"""Relative names of file events are joined to the directory Falco would join them to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeguard.agent.relpaths import AT_FDCWD, resolve_relative


@pytest.fixture
def live(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose cwd is tmp_path/work and which holds tmp_path/other open as fd 3."""
    (tmp_path / "work").mkdir()
    (tmp_path / "other").mkdir()
    code = "import os, sys; os.open(sys.argv[1], os.O_RDONLY); sys.stdout.write('ok\\n'); sys.stdout.flush(); " \
           "sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "other")], cwd=tmp_path / "work",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ok\n"
    yield proc
    proc.kill()
    proc.wait()


def test_open_relative_to_the_cwd_of_a_live_process(live: subprocess.Popen[bytes], tmp_path: Path) -> None:
    event = {"evt.type": "openat", "proc.pid": live.pid, "proc.name": "python3", "fd.name": "../x/./y",
             "fd.nameraw": "../x/./y", "evt.arg.dirfd": AT_FDCWD}
    resolve_relative(event)
    assert (event["fd.name"], event["evt.arg.name"], event["fd.directory"], event["fd.filename"]) == (
        str(tmp_path / "x" / "y"), str(tmp_path / "x" / "y"), str(tmp_path / "x"), "y")
    assert event["fd.nameraw"] == "../x/./y"


def test_names_relative_to_a_dirfd(live: subprocess.Popen[bytes], tmp_path: Path) -> None:
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{live.pid}/fd"))
    dirfd = next(fd for fd in fds if os.readlink(f"/proc/{live.pid}/fd/{fd}") == str(tmp_path / "other"))
    event = {"evt.type": "renameat2", "proc.pid": live.pid, "evt.arg.oldpath": "a", "evt.arg.olddirfd": dirfd,
             "evt.arg.newpath": "/abs/b", "evt.arg.newdirfd": AT_FDCWD}
    resolve_relative(event)
    assert (event["evt.arg.oldpath"], event["evt.arg.newpath"]) == (str(tmp_path / "other" / "a"), "/abs/b")


def test_gone_process_uses_its_exec_cwd_unless_it_is_a_shell() -> None:
    gone = 2 ** 22 + 7  # above pid_max: never a live process
    tool = {"evt.type": "unlinkat", "proc.pid": gone, "proc.name": "rm", "evt.arg.name": ".bash_history",
            "evt.arg.dirfd": AT_FDCWD}
    resolve_relative(tool, exec_cwd="/root/")
    assert tool["evt.arg.name"] == "/root/.bash_history"
    shell = {"evt.type": "open", "proc.pid": gone, "proc.name": "sh", "fd.name": "x"}
    resolve_relative(shell, exec_cwd="/")  # a shell may have cd'd since its exec: left as written
    assert shell["fd.name"] == "x"
    dirfd = {"evt.type": "mkdirat", "proc.pid": gone, "proc.name": "mkdir", "evt.arg.path": "d", "evt.arg.dirfd": 4}
    resolve_relative(dirfd, exec_cwd="/")
    assert dirfd["evt.arg.path"] == "d"
