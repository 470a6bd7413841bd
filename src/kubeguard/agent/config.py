"""What one agent run is asked to do: every `kubeguard agent` option in one record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubeguard.cluster.bounds import port_number

SENSORS = ("ebpf", "proc")


@dataclass
class AgentConfig:
    """Options of one agent run (the `kubeguard agent` flags, docs in its --help)."""

    rules: list[Path] = field(default_factory=list)  # extra Falco rules files
    defaults: bool = True  # load the default rules too
    rule_options: list[str] = field(default_factory=list)  # Falco `rules[].enable.rule=NAME` selections, in order
    resolve_names: bool = False  # resolve the host names of fd.sip.name ... conditions with the node's resolver
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
    protect_after: float | None = None  # seconds in monitor without a deviation before protect (None: never)
    new_workload_mode: str = "discover"  # the mode a workload seen for the first time starts in
    enforce: bool = True  # protect mode blocks in the kernel (else protect only alerts)
    firewall: bool = False  # inline L7 firewall (NFQUEUE) for the node's pods (docs/firewall.md)
    firewall_selector: str | None = None  # kubectl-style label selector of the inline pods (default: all)
    firewall_allow_list: Path | None = None  # protocol allow-list YAML (its pods are inline too)
    firewall_mode: str = "monitor"  # mode of inline pods without a WorkloadPolicy / allow-list mode
    firewall_queue: int = 7  # NFQUEUE number
    firewall_fail_closed: bool = False  # drop instead of pass when the queue is full or a packet uninspectable
    console: str | None = None  # https:// URL of the console to ship alerts and heartbeats to
    console_token: str | None = None  # this node's bearer token for the console
    console_ca: Path | None = None  # CA that signed the console's certificate (default: system CAs)
    console_cert: Path | None = None  # client certificate for a console that requires mTLS
    console_key: Path | None = None
    console_spool: Path | None = None  # disk spool while the console is unreachable (default next to the store)
    console_spool_limit: int = 100_000  # alerts kept in the spool at most (the oldest are dropped, counted)

    def problems(self) -> list[str]:
        """What is wrong with these options, one line each (empty when they can run)."""
        found = []
        if self.sensor not in SENSORS:
            found.append(f"--sensor {self.sensor}: expected one of {', '.join(SENSORS)}")
        if self.queue_size < 1:
            found.append(f"--queue-size {self.queue_size}: must be at least 1")
        if self.firewall_mode not in ("discover", "monitor", "protect"):
            found.append(f"--firewall-mode {self.firewall_mode}: expected discover, monitor or protect")
        if not 0 <= self.firewall_queue <= 65535:
            found.append(f"--firewall-queue {self.firewall_queue}: expected 0-65535")
        if self.metrics_port is not None and port_number(self.metrics_port) is None:
            found.append(f"--metrics-port {self.metrics_port}: expected a port number 1-65535")
        if self.quiet_window < 0:
            found.append(f"--quiet-window {self.quiet_window:g}: must not be negative")
        if self.new_workload_mode not in ("discover", "monitor", "protect"):
            found.append(f"--new-workload-mode {self.new_workload_mode}: expected discover, monitor or protect")
        if self.protect_after is not None and not self.protect_after >= 0:
            found.append(f"--protect-after {self.protect_after:g}: must not be negative")
        found.extend(f"{path}: rules file not found" for path in self.rules if not path.is_file())
        if self.console and not self.console_token:
            found.append("--console needs --console-token-file (this node's API token from the console)")
        if self.console_spool_limit < 1:
            found.append(f"--console-spool-limit {self.console_spool_limit}: must be at least 1")
        return found
