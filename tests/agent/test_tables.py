"""Process table (ancestry, /proc fallback, exit expiry) and fd table (sockets through dup2/fork)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from kubeguard.agent import proctable
from kubeguard.agent.fdtable import FdTable, _hex_endpoint
from kubeguard.agent.proctable import ProcessTable


def exec_event(pid: int, ppid: int, name: str, args: str = "", exepath: str = "") -> dict[str, object]:
    return {"evt.type": "execve", "evt.dir": "<", "evt.rawres": 0, "proc.pid": pid, "proc.ppid": ppid,
            "proc.name": name, "proc.args": args, "proc.exepath": exepath or f"/usr/bin/{name}", "user.uid": 0}


def test_ancestry_from_exec_events_and_exec_replacing_a_process() -> None:
    table = ProcessTable(proc=Path("/nonexistent"))
    table.update(exec_event(10, 1, "containerd-shim"))
    table.update(exec_event(20, 10, "bash", "-c 'python app.py'"))
    table.update(exec_event(30, 20, "python", "app.py"))
    table.update(exec_event(40, 30, "sh", "-c id"))
    chain = table.ancestors(40)
    assert [p.name if p else None for p in chain] == ["python", "bash", "containerd-shim", None]
    assert chain[1] is not None and chain[1].cmdline == "bash -c 'python app.py'"
    table.update(exec_event(40, 30, "id"))  # sh execs id: same pid, new image
    me = table.get(40)
    assert me is not None and (me.name, me.ppid) == ("id", 30)


def test_failed_exec_does_not_replace_the_process() -> None:
    table = ProcessTable(proc=Path("/nonexistent"))
    table.update(exec_event(50, 1, "bash"))
    failed = exec_event(50, 1, "nosuchcmd")
    failed["evt.rawres"] = -2
    table.update(failed)
    info = table.get(50)
    assert info is not None and info.name == "bash"


def test_fork_copies_the_parent_and_exit_expires(monkeypatch) -> None:
    table = ProcessTable(proc=Path("/nonexistent"))
    table.update(exec_event(60, 1, "nginx"))
    table.update({"evt.type": "clone", "proc.pid": 60, "evt.arg.child_pid": 61})
    child = table.get(61)
    assert child is not None and (child.name, child.ppid) == ("nginx", 60)
    table.update({"evt.type": "procexit", "proc.pid": 61})
    assert table.get(61) is not None  # still resolvable for late events
    monkeypatch.setattr(proctable, "EXITED_KEEP_SECONDS", -1.0)
    assert table.expire() == 1
    assert table.get(61) is None


def test_proc_fallback_reads_a_live_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "marker-arg"])
    try:
        # Popen returns at exec's point of no return; the new argv is in place a moment later
        for _ in range(200):
            if b"marker-arg" in Path(f"/proc/{child.pid}/cmdline").read_bytes():
                break
            time.sleep(0.01)
        table = ProcessTable()
        info = table.get(child.pid)
        assert info is not None
        assert info.ppid == os.getpid()
        assert "marker-arg" in info.args
        assert info.exepath == os.path.realpath(sys.executable)
        assert info.identity is not None
        assert [p.pid for p in table.ancestors(child.pid) if p][:1] == [os.getpid()]
    finally:
        child.kill()
        child.wait()


def test_a_gone_pid_is_looked_up_in_proc_once_a_second(monkeypatch) -> None:
    """Events whose parent is gone (and unknown) do not each retry the failing /proc read; an exec or fork of
    that pid, or the retry interval passing, makes it resolvable again."""
    table = ProcessTable(proc=Path("/nonexistent"))
    table.update(exec_event(70, 69, "sh"))
    for _ in range(50):
        assert [p.name if p else None for p in table.ancestors(70)] == [None]
    assert (table.proc_reads, table.misses) == (1, 1)
    table.update(exec_event(69, 1, "bash"))  # the pid shows up through the sensor: known at once
    assert [p.name if p else None for p in table.ancestors(70)] == ["bash", None]
    assert table.get(68) is None and table.proc_reads == 3  # pid 1 (bash's parent), then 68
    monkeypatch.setattr(proctable, "GONE_RETRY_SECONDS", -1.0)
    assert table.get(68) is None and table.proc_reads == 4


def test_table_is_bounded() -> None:
    table = ProcessTable(proc=Path("/nonexistent"), max_entries=100)
    for pid in range(1000, 1300):
        table.update(exec_event(pid, 1, "x"))
    assert len(table) == 100
    assert table.get(1299) is not None and table.get(1000) is None


def connect_event(pid: int, fd: int) -> dict[str, object]:
    return {"evt.type": "connect", "evt.dir": "<", "evt.rawres": 0, "proc.pid": pid, "fd.num": fd,
            "fd.type": "ipv4", "fd.l4proto": "tcp", "fd.sip": "10.0.0.9", "fd.sport": 4444,
            "fd.rip": "10.0.0.9", "fd.rport": 4444, "fd.name": "10.0.0.2:50000->10.0.0.9:4444"}


def test_dup2_of_a_socket_onto_stdio_gets_the_socket_fields() -> None:
    fds = FdTable(proc=Path("/nonexistent"))
    fds.apply(connect_event(100, 3))
    dup_out = {"evt.type": "dup2", "evt.dir": "<", "proc.pid": 100, "evt.arg.oldfd": 3, "evt.arg.newfd": 1,
               "evt.rawres": 1}
    fds.apply(dup_out)
    assert (dup_out["fd.type"], dup_out["fd.sip"], dup_out["fd.num"]) == ("ipv4", "10.0.0.9", 3)
    dup_in = {"evt.type": "dup2", "evt.dir": "<", "proc.pid": 100, "evt.arg.oldfd": 1, "evt.arg.newfd": 0,
              "evt.rawres": 0}
    fds.apply(dup_in)  # 0>&1 after >&: fd 1 is the socket now
    assert dup_in["fd.type"] == "ipv4"
    plain = {"evt.type": "dup2", "evt.dir": "<", "proc.pid": 100, "evt.arg.oldfd": 7, "evt.rawres": 2}
    fds.apply(plain)
    assert "fd.type" not in plain
    fds.apply({"evt.type": "procexit", "proc.pid": 100})
    assert fds.lookup(100, 1) is None


def test_fd_inherited_across_fork_is_found_through_the_parent() -> None:
    fds = FdTable(parent_of={201: 200}.get, proc=Path("/nonexistent"))  # type: ignore[arg-type]
    fds.apply(connect_event(200, 5))
    dup = {"evt.type": "dup2", "evt.dir": "<", "proc.pid": 201, "evt.arg.oldfd": 5, "evt.rawres": 0}
    fds.apply(dup)
    assert dup["fd.rport"] == 4444


def test_failed_connect_is_not_remembered_but_in_progress_is() -> None:
    fds = FdTable(proc=Path("/nonexistent"))
    refused = connect_event(300, 3) | {"evt.rawres": -111}
    fds.apply(refused)
    assert fds.lookup(300, 3) is None
    fds.apply(connect_event(300, 4) | {"evt.rawres": -115})
    assert fds.lookup(300, 4) is not None


def test_proc_fallback_resolves_a_live_socket() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    try:
        found = FdTable().lookup(os.getpid(), client.fileno())
        assert found is not None
        assert (found["fd.type"], found["fd.rip"], found["fd.rport"]) == ("ipv4", "127.0.0.1",
                                                                          server.getsockname()[1])
    finally:
        client.close()
        server.close()


def test_hex_endpoints() -> None:
    assert _hex_endpoint("0100007F:1F90") == ("127.0.0.1", 8080)
    assert _hex_endpoint("00000000000000000000000001000000:0050") == ("::1", 80)


def test_dup_with_socket_fields_from_the_sensor_is_remembered() -> None:
    fds = FdTable(proc=Path("/nonexistent"))
    dup = {"evt.type": "dup2", "proc.pid": 400, "evt.arg.oldfd": 3, "evt.arg.newfd": 1, "evt.rawres": 1,
           "fd.num": 1, "fd.type": "ipv6", "fd.rip": "::1", "fd.rport": 9}
    fds.apply(dup)
    later = {"evt.type": "dup2", "proc.pid": 400, "evt.arg.oldfd": 1, "evt.arg.newfd": 0, "evt.rawres": 0}
    fds.apply(later)
    assert (later["fd.type"], later["fd.rport"]) == ("ipv6", 9)
    file_dup = {"evt.type": "dup2", "proc.pid": 400, "evt.arg.oldfd": 5, "evt.rawres": 1, "fd.type": "file"}
    fds.apply(file_dup)  # fd 1 now holds a file: no longer the socket
    assert fds.lookup(400, 1) is None and file_dup["fd.type"] == "file"
