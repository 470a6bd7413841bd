"""Two sensors reporting the same write give one event; repeats from one sensor all pass."""

from __future__ import annotations

from kubeguard.agent.writededupe import WriteDeduper
from kubeguard.model import Event


def write(sensor: str, pid: int = 7, path: str = "/etc/passwd") -> Event:
    return Event({"evt.type": "openat" if sensor == "ebpf" else "open", "evt.is_open_write": True,
                  "proc.pid": pid, "fd.name": path, "_sensor": sensor})


def test_second_sensor_within_window_is_dropped_and_repeats_pass() -> None:
    got: list[Event] = []
    dedupe = WriteDeduper(got.append)
    dedupe(write("ebpf"))
    dedupe(write("fanotify"))  # the same write seen by fanotify
    dedupe(write("ebpf"))  # a second open by the same process: a new open, reported
    dedupe(write("fanotify", pid=8))  # another process
    dedupe(write("fanotify", path="/etc/shadow"))
    dedupe(Event({"evt.type": "openat", "evt.is_open_read": True, "proc.pid": 7, "fd.name": "/etc/passwd",
                  "_sensor": "fanotify"}))  # reads are never deduplicated
    assert [(e["_sensor"], e["proc.pid"], e["fd.name"]) for e in got] == [
        ("ebpf", 7, "/etc/passwd"), ("ebpf", 7, "/etc/passwd"), ("fanotify", 8, "/etc/passwd"),
        ("fanotify", 7, "/etc/shadow"), ("fanotify", 7, "/etc/passwd")]
    assert dedupe.dropped == 1


def test_outside_the_window_both_pass_and_the_table_stays_bounded() -> None:
    got: list[Event] = []
    dedupe = WriteDeduper(got.append, window=0.0, max_entries=4)
    for pid in range(10):
        dedupe(write("ebpf", pid=pid))
        dedupe(write("fanotify", pid=pid))
    assert len(got) == 20 and dedupe.dropped == 0
    assert len(dedupe._seen) <= 4
