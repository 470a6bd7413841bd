"""fanotify on real writes: resolved paths below /etc and binary dirs; exec permission answers."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensorlog import EventLog, run_sensor

from conftest import need_root, require
from kubeguard.sensors.base import SensorError
from kubeguard.sensors.fanotify import FanotifySensor, PermissionGate
from kubeguard.sensors.proc_connector import cgroup2_mount

PY = sys.executable


@pytest.fixture(scope="module")
def log() -> Iterator[EventLog]:
    need_root("fanotify")
    yield from run_sensor(FanotifySensor())


@pytest.fixture
def etc_file() -> Iterator[Path]:
    path = Path("/etc") / f"kgs-{secrets.token_hex(4)}.conf"
    yield path
    path.unlink(missing_ok=True)


def test_write_below_etc_through_relative_path_and_symlink(log: EventLog, etc_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "innocent.txt"
    link.symlink_to(etc_file)
    # the writer stays alive a while: its name and cgroup are read from /proc when the event is read
    writer = subprocess.run(["sh", "-c", f"echo a > {etc_file.name}; echo $$; sleep 1"], cwd="/etc",
                            capture_output=True, text=True, check=True)
    ev = log.wait(lambda e: e["fd.name"] == str(etc_file) and e["proc.pid"] == int(writer.stdout))
    assert (ev["evt.type"], ev["evt.is_open_write"], ev["fd.directory"], ev["proc.name"]) == (
        "open", True, "/etc", "sh")
    own_cgroup = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].splitlines()[0]
    assert ev["_cgroup_id"] == os.stat(f"{cgroup2_mount()}{own_cgroup}").st_ino  # the writer inherited ours
    via_link = subprocess.run([PY, "-c", textwrap.dedent(f"""
        import os, time
        f = open({str(link)!r}, "a")
        f.write("b"); f.flush()
        print(os.getpid(), f.fileno(), flush=True)
        time.sleep(0.5)
        f.close()
    """)], capture_output=True, text=True, check=True)
    pid, num = (int(v) for v in via_link.stdout.split())
    ev = log.wait(lambda e: e["proc.pid"] == pid)
    assert ev["fd.name"] == str(etc_file)  # the real path, not the symlink written through
    assert ev["fd.num"] == num  # found while the writer still held it
    assert len(log.all(lambda e: e["proc.pid"] == pid)) == 1  # the close of a reported write is not repeated


def test_write_in_binary_dir_reported_and_tmp_ignored(log: EventLog, tmp_path: Path) -> None:
    bindir = Path("/usr/local/bin")
    require(bindir.is_dir(), "/usr/local/bin")
    target = bindir / f"kgs-{secrets.token_hex(4)}"
    plain = tmp_path / "plain"
    try:
        done = subprocess.run(["sh", "-c", f"printf '\\177ELF' > {target}; echo x > {plain}; echo $$; sleep 1"],
                              capture_output=True,
                              text=True, check=True)
    finally:
        target.unlink(missing_ok=True)
    ev = log.wait(lambda e: e["fd.name"] == str(target))
    assert (ev["proc.name"], ev["proc.pid"]) == ("sh", int(done.stdout))
    assert not log.all(lambda e: e["fd.name"] == str(plain))
    assert log.sensor.stats()["lost"] == 0


@pytest.fixture
def tmpfs_mount() -> Iterator[Path]:
    need_root("mount")
    point = Path(tempfile.mkdtemp(prefix="kgs-perm-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", f"kgs-{secrets.token_hex(3)}", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def test_permission_gate_denies_exec_on_a_marked_mount(tmpfs_mount: Path) -> None:
    allowed, denied = tmpfs_mount / "allowed", tmpfs_mount / "denied"
    for path in (allowed, denied):
        shutil.copy("/bin/true", path)
    asked: list[str] = []

    def decide(event) -> bool:
        asked.append(event["fd.name"])
        return event["fd.filename"] != "denied"

    gate = PermissionGate([str(tmpfs_mount)], decide)
    gate.start()
    stop = threading.Event()
    thread = threading.Thread(target=gate.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert subprocess.run([str(allowed)], timeout=10).returncode == 0
        with pytest.raises(PermissionError):
            subprocess.run([str(denied)], timeout=10)
    finally:
        stop.set()
        thread.join(5)
        gate.close()
    assert str(denied) in asked and str(allowed) in asked
    assert gate.counters["denied"] >= 1


def test_permission_gate_refuses_the_root_mount() -> None:
    with pytest.raises(SensorError, match="never mark /"):
        PermissionGate(["/"], lambda event: True)
    with pytest.raises(SensorError, match="not a mount point"):
        PermissionGate(["/usr/share"], lambda event: True)
