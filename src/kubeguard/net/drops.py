"""What the DPI could not inspect, reported as counted alerts (the agent's "syscall event drop" for packets).

Counted sources: flows pushed out of a full flow table before their timeout, IP fragments dropped by the
defragmenter, and packets the capture ring lost in the kernel (live capture, `add_kernel_drops`). At most one
alert per `interval` seconds of packet time, and one more at the end of input, each with the counts since
the previous one and the totals.
"""

from __future__ import annotations

from collections.abc import Callable

from kubeguard.model import Alert, format_time_ns

DPI_DROP_RULE = "DPI internal: packets or flows dropped"


class DropReporter:
    """Turns growing drop counters into alerts, at most one per interval."""

    def __init__(self, counters: Callable[[], dict[str, int]], emit: Callable[[Alert], None],
                 interval: float = 10.0, hostname: str = "") -> None:
        self.counters = counters
        self.emit = emit
        self.interval = interval
        self.hostname = hostname
        self.kernel_drops = 0
        self.reported: dict[str, int] = {}
        self.alerts = 0
        self._next = 0.0

    def add_kernel_drops(self, count: int) -> None:
        """Packets the capture ring lost before kubeguard read them."""
        self.kernel_drops += count

    def due(self, ts: float) -> bool:
        """Cheap per-packet test: has the interval passed since the last check?"""
        return ts >= self._next

    def check(self, ts: float, final: bool = False) -> None:
        """Raise one alert if any counter grew since the last report."""
        self._next = ts + self.interval
        now = {**self.counters(), "capture.kernel_drops": self.kernel_drops}
        new = {key: value - self.reported.get(key, 0) for key, value in now.items()}
        if not any(count > 0 for count in new.values()):
            return
        self.reported = now
        self.alerts += 1
        shown = ", ".join(f"{key} +{count}" for key, count in new.items() if count > 0)
        fields: dict[str, object] = dict(now)
        fields.update({f"{key}.new": count for key, count in new.items()})
        self.emit(Alert(
            rule=DPI_DROP_RULE, priority="Critical", source="internal", hostname=self.hostname,
            output=f"DPI dropped traffic it could not inspect: {shown}{' (end of input)' if final else ''}",
            time=format_time_ns(int(ts * 1e9)), output_fields=fields, tags=["kubeguard_internal", "T1562.001"]))
