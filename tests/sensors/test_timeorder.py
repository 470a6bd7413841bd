"""Kernel-time order across CPUs' rings: events held until the shim's drain marker covers them."""

from __future__ import annotations

from kubeguard.sensors.timeorder import SLACK_NS, STUCK_NS, WINDOW_NS, TimeOrder, exec_marker_time, marker_time

OFFSET = 1_000_000_000_000  # wall clock minus CLOCK_MONOTONIC
MS = 1_000_000


def ev(mono_ms: int, name: str) -> dict:
    return {"evt.time": OFFSET + mono_ms * MS, "proc.name": name}


def names(events: list[dict]) -> list[str]:
    return [e["proc.name"] for e in events]


def test_marker_lines_are_recognised_and_others_not() -> None:
    assert marker_time(b'{"type": "kg_drain", "data": 123456789}') == 123456789
    assert marker_time(b'{"type": "kg_drain", "data": 42}\n') == 42
    assert marker_time(b'{"type": "printf", "data": "A|1|2"}') is None
    assert marker_time(b'{"type": "kg_drain", "data": x}') is None
    # the exec probe's markers are its own: neither reads the other's
    assert exec_marker_time(b'{"type": "kg_drain_exec", "data": 77}\n') == 77
    assert marker_time(b'{"type": "kg_drain_exec", "data": 77}') is None
    assert exec_marker_time(b'{"type": "kg_drain", "data": 77}') is None


def test_one_drain_of_two_rings_is_released_in_time_order_up_to_its_marker() -> None:
    """CPU 0's ring (read first) holds a child's exec, CPU 1's the parent's exec from earlier: the marker
    releases both, parent first; what is newer than the marker waits for the next one."""
    order = TimeOrder(OFFSET)
    order.add([ev(105, "child-exec"), ev(130, "child-exit")])  # CPU 0
    order.add([ev(100, "parent-exec"), ev(104, "parent-fork")])  # CPU 1
    assert order.drained(101 * MS) == []  # a marker covers what is older than its drain time, less the slack
    assert names(order.drained(120 * MS)) == ["parent-exec", "parent-fork", "child-exec"]
    assert len(order) == 1
    assert order.drained(131 * MS) == []
    assert names(order.drained(140 * MS)) == ["child-exit"]
    assert order.late == 0


def test_an_event_after_a_later_one_went_out_is_released_and_counted_late() -> None:
    order = TimeOrder(OFFSET)
    order.add([ev(10, "a")])
    assert names(order.drained(20 * MS)) == ["a"]
    order.add([ev(5, "held-by-the-decoder")])  # e.g. an exec that waited seconds for a missing line
    assert names(order.drained(30 * MS)) == ["held-by-the-decoder"]
    assert order.late == 1


def test_equal_times_keep_their_arrival_order() -> None:
    order = TimeOrder(OFFSET)
    order.add([ev(7, "first"), ev(7, "second"), ev(6, "earlier")])
    assert names(order.flush()) == ["earlier", "first", "second"]


def test_without_markers_events_wait_a_window_for_earlier_ones() -> None:
    """Plain bpftrace (no shim): an event goes once it is WINDOW_NS old, sorted with what came meanwhile."""
    order = TimeOrder(OFFSET)
    order.add([ev(100, "b")])
    assert order.due(100 * MS + WINDOW_NS - MS) == []
    assert 0 < order.wait_s(100 * MS, idle_s=0.2) <= WINDOW_NS / 1e9
    order.add([ev(99, "a")])
    assert names(order.due(101 * MS + WINDOW_NS)) == ["a", "b"]


def test_with_markers_idle_release_only_for_stuck_events() -> None:
    """Once the shim's markers flow, time alone releases nothing unless it is STUCK_NS old (a stalled bpftrace)."""
    order = TimeOrder(OFFSET)
    order.drained(0)
    order.add([ev(100, "x")])
    assert order.due(100 * MS + WINDOW_NS * 4) == []
    assert order.wait_s(100 * MS, idle_s=0.2) == 0.2
    assert names(order.due(100 * MS + STUCK_NS + SLACK_NS)) == ["x"]
