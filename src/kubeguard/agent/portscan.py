"""Port-scan detection: a stateful rule the stateless rule engine cannot express.

One process in a container connecting to many distinct (address, port) targets within a short
window is scanning. Refused and in-progress connects count: a scan mostly meets closed ports.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from kubeguard.model import Alert, Event

PORT_SCAN_RULE = "Port scan from container"


class PortScanDetector:
    """Alerts once per process and window when it reached `threshold` distinct targets in `window` seconds."""

    def __init__(self, threshold: int = 20, window: float = 10.0, max_keys: int = 10000) -> None:
        self.threshold = threshold
        self.window = window
        self.max_keys = max_keys
        self._targets: dict[tuple[str, int], deque[tuple[float, tuple[Any, Any]]]] = {}
        self._alerted: dict[tuple[str, int], float] = {}

    def process(self, event: Event) -> list[Alert]:
        if event.get("evt.type") != "connect" or event.get("container.id") in (None, "host"):
            return []
        if event.get("fd.type") not in ("ipv4", "ipv6"):
            return []
        target = (event.get("fd.rip", event.get("fd.sip")), event.get("fd.rport", event.get("fd.sport")))
        key = (str(event["container.id"]), int(event.get("proc.pid") or 0))
        now = time.monotonic()
        seen = self._targets.get(key)
        if seen is None:
            if len(self._targets) >= self.max_keys:
                self._targets.pop(next(iter(self._targets)))
            seen = self._targets[key] = deque()
        seen.append((now, target))
        while seen and now - seen[0][0] > self.window:
            seen.popleft()
        distinct = {t for _, t in seen}
        if len(distinct) < self.threshold or now - self._alerted.get(key, -1e18) < self.window:
            return []
        self._alerted[key] = now
        ports = sorted({p for _, p in distinct if isinstance(p, int)})
        hosts = sorted({str(h) for h, _ in distinct})
        fields = {k: event.get(k) for k in ("proc.name", "proc.cmdline", "proc.pid", "user.name")}
        fields.update({"scan.targets": len(distinct), "scan.hosts": hosts[:10], "scan.window_s": self.window,
                       "scan.ports_min": ports[0] if ports else None, "scan.ports_max": ports[-1] if ports else None})
        return [Alert(
            rule=PORT_SCAN_RULE, priority="Warning",
            output=(f"Port scan from container: {len(distinct)} distinct targets in {self.window:.0f}s "
                    f"(process={event.get('proc.name')} hosts={','.join(hosts[:3])} "
                    f"pod={event.get('k8s.ns.name')}/{event.get('k8s.pod.name')})"),
            output_fields=fields, tags=["T1046", "network", "mitre_discovery"],
        )]
