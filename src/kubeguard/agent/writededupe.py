"""One report per file write when two sensors see it (eBPF openat and fanotify).

The eBPF sensor sees the open-for-write (with the cgroup and argv of the caller); fanotify sees the
write itself with the real resolved path. Both become a write-open `Event`, so without this the
write rules would fire twice. The first sensor to report (pid, path) wins; the same pair from the
other sensor within `window` seconds is dropped. Repeats from one sensor are distinct opens and
pass. Paths the eBPF sensor cut short (its string limit) do not match and may be reported twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kubeguard.model import Event

OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})


class WriteDeduper:
    """Wraps an emit function; thread-safe (each sensor emits from its own thread).

    A write that wins is emitted under the lock, so the wrapped emit sees one write event at a
    time and in the order the decisions were taken (the pipeline's submit never blocks).
    """

    def __init__(self, emit: Callable[[Event], None], window: float = 2.0, max_entries: int = 65536) -> None:
        self.emit = emit
        self.window = window
        self.max_entries = max_entries
        self.dropped = 0
        self._seen: dict[tuple[object, object], tuple[float, object]] = {}  # (pid, path) -> (time, sensor)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.get("evt.type") not in OPEN_TYPES or not event.get("evt.is_open_write"):
            self.emit(event)
            return
        key = (event.get("proc.pid"), event.get("fd.name"))
        sensor = event.get("_sensor")
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen[1] != sensor and now - seen[0] < self.window:
                self.dropped += 1
                return
            if len(self._seen) >= self.max_entries:
                self._prune(now)
            self._seen[key] = (now, sensor)
            self.emit(event)

    def _prune(self, now: float) -> None:
        fresh = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        self._seen = fresh if len(fresh) < self.max_entries // 2 else {}
