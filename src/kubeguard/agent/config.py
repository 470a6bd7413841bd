"""What one agent run is asked to do: every `kubeguard agent` option in one record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SENSORS = ("ebpf", "proc")


@dataclass
class AgentConfig:
    """Options of one agent run (the `kubeguard agent` flags, docs in its --help)."""

    rules: list[Path] = field(default_factory=list)  # extra Falco rules files
    defaults: bool = True  # load the default rules too
    events_out: Path | None = None  # every enriched event, replay format
    alerts_out: str = "-"  # Falco JSON lines file for alerts; "-" = stdout
    pods: Path | None = None  # pods map file; None = kubelet / API server when in a cluster
    sensor: str = "ebpf"  # one of SENSORS
    fanotify: bool = False  # also watch file writes through fanotify
    store: Path | None = None  # alert store; None = no store
    metrics_port: int | None = None  # serve Prometheus metrics on this port
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = None  # bearer token for /metrics
    webhook: str | None = None  # POST each alert here
    webhook_headers: list[str] = field(default_factory=list)  # 'Name: value' lines
    syslog: str | None = None  # udp://HOST:PORT or unix:///dev/log
    node: str = ""  # this node's name
    queue_size: int = 65536  # events buffered between sensor and rules
    drop_report_interval: float = 10.0  # seconds between drop alerts
    duration: float | None = None  # stop after this many seconds
    policy_dir: Path | None = None  # workload policies (learned + hand-written); None = no policies
    quiet_window: float = 3600.0  # seconds without new behaviour before discover -> monitor
    enforce: bool = True  # protect mode blocks in the kernel (else protect only alerts)

    def problems(self) -> list[str]:
        """What is wrong with these options, one line each (empty when they can run)."""
        found = []
        if self.sensor not in SENSORS:
            found.append(f"--sensor {self.sensor}: expected one of {', '.join(SENSORS)}")
        if self.queue_size < 1:
            found.append(f"--queue-size {self.queue_size}: must be at least 1")
        if self.quiet_window < 0:
            found.append(f"--quiet-window {self.quiet_window:g}: must not be negative")
        found.extend(f"{path}: rules file not found" for path in self.rules if not path.is_file())
        return found
