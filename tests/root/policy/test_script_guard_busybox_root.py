"""Protect mode on an Alpine-style shell (#13): /bin/sh is a link to busybox, one binary for every program, so
/proc/PID/exe names busybox and argv[0] says which program runs. The script answerer names the script by that
program (before, it saw no interpreter in busybox and released every script: an unknown `sh new.sh` ran in
protect while the agent reported it blocked). An unknown script, run as `sh new.sh` or `busybox sh new.sh`, is
killed before it writes its marker; the allowed script and `sh -c` run."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require

from kubeguard.policy.document import ScriptRule
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"


def test_busybox_shell_scripts_are_judged_by_the_program_argv_names(podlab: PodLab) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    require(os.path.exists(BUSYBOX), "busybox (Debian package busybox-static)")
    work = Path(tempfile.mkdtemp(prefix="kgb", dir="/tmp"))
    guard = ExecGuard()
    try:
        (work / "bin").mkdir()
        sh = work / "bin" / "sh"
        sh.symlink_to(os.path.realpath(BUSYBOX))  # as Alpine's /bin/sh -> /bin/busybox
        known, new = work / "known.sh", work / "new.sh"
        known.write_text(f"echo run >> {work}/known.log\n")  # shell builtins only: no other exec
        new.write_text(f"echo ran > {work}/new.marker\n")
        pod = podlab.pod("alpine")
        busybox = os.stat(BUSYBOX).st_ino
        guard.apply([GuardedCgroup(pod.cgroup_id, frozenset({os.stat(NSENTER).st_ino, busybox}),
                                   interpreter_inodes=frozenset({busybox}), scripts=(ScriptRule(str(known)),))])
        for argv in ([str(sh), "-e", str(new)], [BUSYBOX, "sh", str(new)]):
            before = guard.script_kills
            run = pod.run(argv, cwd=work)
            assert run.returncode == -signal.SIGKILL, (argv, run.returncode, run.stderr)
            deadline = time.monotonic() + 60
            while guard.script_kills == before:  # reported by the answerer after the kill
                assert time.monotonic() < deadline, "the kill was not reported"
                time.sleep(0.05)
        assert not (work / "new.marker").exists()  # the unknown script ran none of its code
        assert pod.run([str(sh), "-e", str(known)], cwd=work).returncode == 0
        assert (work / "known.log").read_text() == "run\n"
        code = pod.run([str(sh), "-c", "echo released"])  # code on the command line names no script file
        assert code.returncode == 0 and code.stdout == "released\n"
    finally:
        guard.close()
        shutil.rmtree(work, ignore_errors=True)
