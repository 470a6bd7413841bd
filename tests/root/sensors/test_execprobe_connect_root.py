"""The compiled probe's connect, accept and packet-socket records read as kubeguard.bt's connect, accept and
socket sections: both run side by side on the same calls (IPv4 and IPv6, TCP and UDP, accept and accept4, refused,
in progress, Unix paths and abstract names, a call without an address, packet sockets made and refused) and decode
to the same events, field for field. Unix paths of both lengths bpftrace's section reads apart (up to 63 bytes with
str(), longer ones as sun_path's 108 bytes), and a short address that ends right before an unreadable page, which a
fixed 108-byte read fails on: both read the bytes the caller passed."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from probelines import BPFTRACE_READY, ProbeLines

from conftest import need_root, require
from kubeguard.sensors import execprobe
from kubeguard.sensors.ebpf import available_tracepoints, build_program, split_sections

CALLS = r"""
import ctypes, mmap, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
print(os.getpid(), flush=True)
sys.stdin.readline()
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection((host, port))
    server.accept()[0].close()                      # accept4 (Python's accept)
    client2 = socket.create_connection((host, port))
    fd = libc.accept(server.fileno(), None, None)   # accept
    os.close(fd)
    closed = socket.socket(family)
    closed.bind((host, 0))                          # bound, not listening: refused
    refused = socket.socket(family)
    refused.connect_ex((host, closed.getsockname()[1]))
    quiet = socket.socket(family)
    quiet.setblocking(False)
    quiet.connect_ex((host, port))                  # in progress or done at once
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.connect((host, 5353))
unix = socket.socket(socket.AF_UNIX)
unix.connect_ex("/nonexistent/kubeguard-probe.sock")
abstract = socket.socket(socket.AF_UNIX)
abstract.connect_ex("\0kubeguard-probe-abstract")
unix.connect_ex("/nonexistent/" + "long-" * 16 + "kubeguard.sock")  # over str()'s 63 bytes
# a short address ending right before an unreadable page (a fixed 108-byte read of it fails)
edge = mmap.mmap(-1, 2 * mmap.PAGESIZE)
base = ctypes.addressof(ctypes.c_char.from_buffer(edge))
assert libc.mprotect(ctypes.c_void_p(base + mmap.PAGESIZE), mmap.PAGESIZE, 0) == 0
address = struct.pack("<H", socket.AF_UNIX) + b"/nonexistent/kubeguard-edge.sock\0"
edge[mmap.PAGESIZE - len(address):mmap.PAGESIZE] = address
libc.connect(unix.fileno(), ctypes.c_void_p(base + mmap.PAGESIZE - len(address)), len(address))
libc.connect(unix.fileno(), None, 0)                 # no address: not reported
socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(3)).close()
print(libc.socket(socket.AF_PACKET, 99, 0) < 0, file=sys.stderr)   # refused: reported with its error
print("done", flush=True)
"""


def calls_of(out: ProbeLines, pid: int) -> list[dict]:
    """The process's connect, accept and socket events, in order, without their timestamps."""
    return [{k: v for k, v in e.items() if k != "evt.time"} for e in out.decoded()
            if e["proc.pid"] == pid and e["evt.type"] in ("connect", "accept", "accept4", "socket")]


def test_connect_and_accept_records_read_as_the_sections(tmp_path: Path) -> None:
    need_root("the exec probe")
    require(Path("/sys/kernel/btf/vmlinux").exists(), "kernel BTF")
    try:
        probe = execprobe.build(want_env=False)
    except execprobe.ExecProbeUnavailable as exc:
        require(False, f"the compiled exec probe ({exc})")
        return
    assert {"connect", "accept", "socket"} <= set(execprobe.SECTIONS)
    text = resources.files("kubeguard.sensors").joinpath("kubeguard.bt").read_text()
    others = tuple(name for name, _ in split_sections(text) if name not in ("", "connect", "accept", "socket"))
    program, dropped = build_program(available_tracepoints(), skip=others)
    assert not dropped
    compiled = ProbeLines(probe.command())
    traced = ProbeLines(["bpftrace", "-f", "json", "-e", program], BPFTRACE_READY)
    caller = subprocess.Popen([sys.executable, "-c", CALLS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for out in (compiled, traced):
            assert out.ready.wait(120), out.proc.stderr.read().decode() if out.proc.poll() is not None else "no ready"
        assert caller.stdout is not None and caller.stdin is not None
        pid = int(caller.stdout.readline())
        caller.stdin.write("go\n")
        caller.stdin.flush()
        assert caller.stdout.readline().strip() == "done"
        done = time.monotonic_ns()
        deadline = time.monotonic() + 60
        while compiled.drained_to <= done or len(calls_of(traced, pid)) < len(calls_of(compiled, pid)):
            assert time.monotonic() < deadline, "the probes did not report every call"
            time.sleep(0.05)
    finally:
        caller.kill()
        caller.wait()
        for out in (compiled, traced):
            out.stop()
    got, want = calls_of(compiled, pid), calls_of(traced, pid)
    assert got == want
    kinds = [(e["evt.type"], e.get("fd.type"), e.get("fd.l4proto"), e["evt.res"]) for e in got]
    for family in ("ipv4", "ipv6"):
        assert kinds.count(("connect", family, "tcp", "SUCCESS")) >= 2  # and the non-blocking one, or:
        assert kinds.count(("connect", family, "tcp", "SUCCESS")) + kinds.count(
            ("connect", family, "tcp", "EINPROGRESS")) == 3
        assert ("accept4", family, "tcp", "SUCCESS") in kinds and ("accept", family, "tcp", "SUCCESS") in kinds
        assert ("connect", family, "tcp", "ECONNREFUSED") in kinds
        assert ("connect", family, "udp", "SUCCESS") in kinds
    unix = [e for e in got if e.get("fd.type") == "unix"]
    assert [(e["fd.name"], e["evt.res"]) for e in unix] == [
        ("/nonexistent/kubeguard-probe.sock", "ENOENT"), ("", "ECONNREFUSED"),
        ("/nonexistent/" + "long-" * 16 + "kubeguard.sock", "ENOENT"), ("/nonexistent/kubeguard-edge.sock", "ENOENT")]
    packet = [(e["evt.res"], e["evt.arg.domain"]) for e in got if e["evt.type"] == "socket"]
    assert [res for res, _ in packet] == ["SUCCESS", "EINVAL"] and {d for _, d in packet} == {"AF_PACKET"}
    assert len(got) == 2 * 7 + 4 + 2  # the call without an address and the other sockets are not reported

