"""Two sensor threads submitting at once: every counter of the pipeline and the write deduper is exact."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubeguard.agent.enrich import Enricher
from kubeguard.agent.pipeline import Pipeline
from kubeguard.agent.podsource import PodSource
from kubeguard.agent.proctable import ProcessTable
from kubeguard.agent.writededupe import WriteDeduper
from kubeguard.model import Alert, Event

PER_THREAD = 20_000
QUEUE = 5_000


class NoRules:
    def process(self, event: Event) -> list[Alert]:
        return []


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, so a racy `+=` loses updates."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def keep(event: Event) -> Event:
    return event


def hammer(*senders: Callable[[], None]) -> None:
    """Run each sender in its own thread, all released at once."""
    start = threading.Barrier(len(senders))

    def run(send: Callable[[], None]) -> None:
        start.wait()
        send()

    threads = [threading.Thread(target=run, args=(send,)) for send in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_sensor_threads_counts_are_exact() -> None:
    """Received and dropped counts add up exactly when two threads overflow the queue together."""
    pipe = Pipeline(Enricher(PodSource(), procs=ProcessTable(proc=Path("/nonexistent"))), NoRules(),
                    queue_size=QUEUE)  # not started: the queue fills and the rest is dropped

    def sensor(etype: str) -> Callable[[], None]:
        return lambda: [pipe.submit(Event({"evt.type": etype, "proc.pid": i})) for i in range(PER_THREAD)] and None

    hammer(sensor("execve"), sensor("openat"))
    assert pipe.received == {"execve": PER_THREAD, "openat": PER_THREAD}
    assert pipe.total_dropped == 2 * PER_THREAD - QUEUE
    assert pipe.events.qsize() == QUEUE


def test_write_deduper_under_two_threads_emits_each_write_once() -> None:
    """Both sensors report the same writes at once: each (pid, path) is emitted once, the rest counted dropped."""
    got: list[Event] = []
    received = {"n": 0}

    def emit(event: Event) -> None:  # read-modify-write with a call between: only right if emits are serialised
        count = received["n"]
        got.append(keep(event))
        received["n"] = count + 1

    dedupe = WriteDeduper(emit, window=3600.0, max_entries=4 * PER_THREAD)

    def sensor(name: str) -> Callable[[], None]:
        def send() -> None:
            for pid in range(PER_THREAD):
                dedupe(Event({"evt.type": "openat", "evt.is_open_write": True, "proc.pid": pid,
                              "fd.name": "/etc/passwd", "_sensor": name}))
        return send

    hammer(sensor("ebpf"), sensor("fanotify"))
    assert received["n"] == len(got) == PER_THREAD
    assert sorted(e["proc.pid"] for e in got) == list(range(PER_THREAD))
    assert dedupe.dropped == PER_THREAD
