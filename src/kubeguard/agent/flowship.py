"""Flow records for the console from what the agent sees: its connect/accept events (pod-attributed).

`FlowAggregator.observe(event)` counts each successful inet connect (the pod is the client) or accept (the
pod is the server) per (client ip, client pod, server ip, server pod, server port, l4 protocol) over a
window; `flush()` hands the window's records to `ship` in the `dpi --flows-out` record format the console's
``POST /api/agent/flows`` takes, with ``flow.count`` and a stable ``flow.id`` (node, window, key) so a
resent batch is stored once. Only connections with a pod on this side are counted (host noise stays out).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from kubeguard.model import Event, format_time_ns

Key = tuple[str, str, str, str, int, str]
OK_RESULTS = (0, -115)  # success, or EINPROGRESS of a non-blocking connect


class FlowAggregator:
    """Counts connections per key and window; thread-safe (the pipeline worker observes, the agent flushes)."""

    def __init__(self, ship: Callable[[list[dict[str, Any]]], None], node: str, window: float = 10.0,
                 max_keys: int = 50_000) -> None:
        self.ship = ship
        self.node = node
        self.window = window
        self.max_keys = max_keys
        self.overflow = 0  # connections not counted because the window held max_keys keys
        self._lock = threading.Lock()
        self._counts: dict[Key, int] = {}
        self._start = time.time()

    def observe(self, event: Event) -> None:
        etype = event.get("evt.type")
        if etype not in ("connect", "accept", "accept4") or event.get("fd.type") not in ("ipv4", "ipv6"):
            return
        if event.get("evt.rawres", 0) not in OK_RESULTS and etype == "connect":
            return
        pod = event.get("k8s.pod.name")
        if not pod:
            return
        here = f"{event.get('k8s.ns.name', '')}/{pod}"
        client_pod, server_pod = (here, "") if etype == "connect" else ("", here)
        try:
            key = (str(event["fd.cip"]), client_pod, str(event["fd.sip"]), server_pod, int(event["fd.sport"]),
                   str(event.get("fd.l4proto", "tcp")))
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            if key in self._counts:
                self._counts[key] += 1
            elif len(self._counts) < self.max_keys:
                self._counts[key] = 1
            else:
                self.overflow += 1

    def flush(self, force: bool = False) -> int:
        """Ship the window's records when it has ended (or now with `force`); returns how many."""
        now = time.time()
        with self._lock:
            if not force and now - self._start < self.window:
                return 0
            counts, start = self._counts, self._start
            self._counts, self._start = {}, now
        records = [self._record(key, count, start, now) for key, count in counts.items()]
        if records:
            self.ship(records)
        return len(records)

    def _record(self, key: Key, count: int, start: float, end: float) -> dict[str, Any]:
        cip, cpod, sip, spod, sport, l4 = key
        uid = hashlib.sha256(f"{self.node}|{start!r}|{key!r}".encode()).hexdigest()[:32]
        record: dict[str, Any] = {
            "fd.cip": cip, "fd.sip": sip, "fd.sport": sport, "fd.l4proto": l4, "net.proto": "unknown",
            "net.verdict": "pass", "flow.count": count, "flow.id": uid,
            "flow.start": format_time_ns(int(start * 1e9)), "flow.end": format_time_ns(int(end * 1e9)),
        }
        if cpod:
            record["net.client.pod"] = cpod
        if spod:
            record["net.server.pod"] = spod
        return record
