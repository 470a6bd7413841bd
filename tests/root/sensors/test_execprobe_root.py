"""The compiled exec probe's two forms read alike: its whole-exec E lines and, with -s, the A, V, XE, XF, X and W
lines kubeguard.bt prints (run side by side on the same execs: argv past the split lines' cap, long and odd arguments,
deep and relative paths, environments with escapes, one too long for the E line and one past its copy, a memfd
exec, a failed exec)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from probelines import ProbeLines
from sensorlog import run_sensor

from conftest import need_root, require
from kubeguard.sensors import execprobe
from kubeguard.sensors.ebpf import EbpfSensor, tracing_dir

MEMFD_EXEC = ("import os, sys; fd = os.memfd_create('kg-memfd'); os.write(fd, open('/bin/true', 'rb').read()); "
              "os.execve(fd, ['kg-memfd', 'one'], {'M': '1'})")


class ProbeOutput(ProbeLines):
    """One running probe and the lines it printed."""

    def execs(self, start_ns: int, end_ns: int, tag_count: Counter[str]) -> dict[tuple[int, int], dict]:
        """The decoded execs stamped between the two times (CLOCK_MONOTONIC) by (thread, n-th exec of the
        thread), without their timestamps (each probe's program reads its own)."""
        events = self.decoded()
        for line in self.lines:
            if line.startswith(b'{"type": "printf", "data": "'):
                tag_count[line[28:31].split(b"\\")[0].decode()] += 1
        seen: Counter[int] = Counter()
        out = {}
        for event in events:
            if event["evt.type"] == "execve" and start_ns < event["evt.time"] < end_ns:
                seen[event["proc.tid"]] += 1
                out[event["proc.tid"], seen[event["proc.tid"]]] = {k: v for k, v in event.items() if k != "evt.time"}
        return out


def test_whole_exec_lines_read_as_the_split_lines(tmp_path: Path) -> None:
    need_root("the exec probe")
    try:
        probe = execprobe.build(want_env=True)
    except execprobe.ExecProbeUnavailable as exc:
        require(False, f"the compiled exec probe ({exc})")
        return
    command = probe.command()
    whole, split = ProbeOutput(command), ProbeOutput([command[0], "-s", *command[1:]])
    try:
        for out in (whole, split):
            assert out.ready.wait(120), out.proc.stderr.read().decode() if out.proc.poll() is not None else "no ready"
        start = time.monotonic_ns()
        deep = tmp_path
        for depth in range(12):
            deep = deep / f"d{depth}-{'x' * depth * 7}"
        deep.mkdir(parents=True)
        runs: list[tuple[list[str], dict[str, str], Path]] = [
            (["/bin/true"], {}, Path("/")),
            (["/bin/true", *[f"arg{i}" for i in range(20)]], {"A": "1"}, tmp_path),
            (["/bin/echo", "x" * 100, "sep\x1finside", 'q"uote', "back\\slash", "ünï"],
             {"Q": 'quote"back\\slash', "C": "ctl\x01\x7f\x1fz", "U": "héllo", "N": "\n"}, deep),
            (["/bin/true"], {f"V{i}": "y" * 100 for i in range(35)}, deep),  # too long for the E line
            (["/bin/true"], {f"V{i}": "z" * 100 for i in range(60)}, Path("/tmp")),  # past the 4 KiB copy
            (["./true", "relative"], {"E": ""}, Path("/bin")),
            (["/bin/sh", "-c", "exec /bin/true 1 2 3; exit 1"], {"B": "\n"}, Path("/usr")),
            ([sys.executable, "memfd.py"], {}, tmp_path),
        ]
        (tmp_path / "memfd.py").write_text(MEMFD_EXEC)  # (short arguments: only two runs have long ones)
        for argv, env, cwd in runs:
            subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        missing = subprocess.run(["/bin/sh", "-c", "exec ./not-there x"], cwd=tmp_path, stderr=subprocess.DEVNULL)
        assert missing.returncode == 127
        for _ in range(50):
            subprocess.run(["/bin/true", "loop"], env={"L": "1"}, check=True)
        done = time.monotonic_ns()
        deadline = time.monotonic() + 60
        while min(whole.drained_to, split.drained_to) <= done:
            assert time.monotonic() < deadline, "the probes did not drain"
            time.sleep(0.05)
    finally:
        for out in (whole, split):
            out.proc.terminate()
            out.proc.wait(timeout=30)
    tags: dict[str, Counter[str]] = {"whole": Counter(), "split": Counter()}
    whole_execs, split_execs = (out.execs(start, done, tags[name]) for name, out in (("whole", whole),
                                                                                  ("split", split)))
    assert whole_execs.keys() == split_execs.keys()
    # the E line carries every argument whole; the split lines 15 of 63 bytes: the execs with longer ones aside,
    # the two forms read alike, field for field
    long_args = {key for key, e in whole_execs.items() if e["proc.args"].startswith(("arg0 arg1", "x" * 100))}
    assert len(long_args) == 2
    assert {k: e for k, e in whole_execs.items() if k not in long_args} == {
        k: e for k, e in split_execs.items() if k not in long_args}
    argv_fields = ("proc.args", "proc.cmdline", "_argv_truncated")
    for key in long_args:
        assert {k: v for k, v in whole_execs[key].items() if k not in argv_fields} == {
            k: v for k, v in split_execs[key].items() if k not in argv_fields}
    assert sorted(whole_execs[key]["proc.args"] for key in long_args) == [
        " ".join(f"arg{i}" for i in range(20)),
        "x" * 100 + " sep\ufffdinside q\"uote back\\slash ünï"]  # the separator kept out of the fields
    assert sorted(split_execs[key]["proc.args"] for key in long_args) == [
        " ".join(f"arg{i}" for i in range(14)), "x" * 63 + " sep\ufffdinside q\"uote back\\slash ünï"]
    mine = [e for e in whole_execs.values() if e["proc.pid"] != os.getpid()]
    assert len(mine) >= 60
    assert {"proc.is_exe_from_memfd": True} in [{"proc.is_exe_from_memfd": e["proc.is_exe_from_memfd"]} for e in mine]
    # the E form: one line per successful exec (XE lines only for the environments too long for it, A/X/W only
    # for the failed exec); the split form: A, X and W lines for each
    assert tags["whole"]["E"] >= 60 and tags["whole"]["A"] == tags["whole"]["X"] >= 1
    assert tags["split"]["A"] == tags["split"]["X"] >= tags["whole"]["E"] + 1 and tags["split"]["E"] == 0
    assert 0 < tags["whole"]["XE"] < tags["split"]["XE"]


def test_a_probe_the_kernel_refuses_leaves_its_sections_to_bpftrace(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A prebuilt probe a node's kernel will not load (here: an object that is not one) must not cost the node its
    sensor: the sensor says why, lists it among its blind spots and runs the probe's sections in bpftrace."""
    need_root("the exec probe")
    require(shutil.which("bpftrace") is not None, "bpftrace")
    require(tracing_dir() is not None, "tracefs")
    try:
        probe = execprobe.build(want_env=False)
    except execprobe.ExecProbeUnavailable as exc:
        require(False, f"the compiled exec probe ({exc})")
        return
    refused = tmp_path / "refused.bpf.o"
    refused.write_bytes(b"\x7fELF, but not an object")
    monkeypatch.setattr(EbpfSensor, "_probe_command",
                        lambda self: [str(probe.loader), str(refused)] if self.exec_probe else None)
    running = run_sensor(EbpfSensor())
    log = next(running)
    try:
        sensor = log.sensor
        assert isinstance(sensor, EbpfSensor)
        assert sensor.probe is None and sensor.exec_probe_state.startswith("did not start: execprobe:")
        assert [b for b in sensor.blind_spots if "exec probe" in b] == [
            f"compiled exec probe did not start ({sensor.exec_probe_state[15:]}): execs cost ~9 us of probe time"]
        assert len(sensor.blind_spots) == len(set(sensor.blind_spots))
        marker = f"kg-fallback-{os.getpid()}"
        done = subprocess.run(["/bin/echo", marker], capture_output=True, check=True)
        assert done.stdout.strip() == marker.encode()
        log.wait(lambda e: e["evt.type"] == "execve" and marker in e.get("proc.args", ""))
        with socket.create_server(("127.0.0.1", 0)) as server, \
                socket.create_connection(server.getsockname()) as client:
            port = client.getsockname()[1]
            log.wait(lambda e: e["evt.type"] == "connect" and e["proc.pid"] == os.getpid()
                     and e.get("fd.lport") == port)
    finally:
        running.close()
