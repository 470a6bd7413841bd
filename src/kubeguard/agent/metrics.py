"""Prometheus metrics of the agent: events, drops (Falco's n_drops), alerts by rule, sensor health.

Served on ``--metrics-port`` bound to 127.0.0.1 by default. Binding another address requires a
bearer token (``KUBEGUARD_METRICS_TOKEN`` or ``--metrics-token-file``): the endpoint never serves
unauthenticated beyond the node itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubeguard.errors import KubeguardError


class MetricsError(KubeguardError):
    """The metrics endpoint cannot be served as asked (no token off loopback, port taken)."""


class AgentMetrics:
    """The agent's metrics in their own registry (so several agents in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("kubeguard_agent_events", "Events received from the sensors, by type",
                              ["type"], registry=r)
        self.drops = Counter("kubeguard_agent_drops", "Events dropped because the pipeline queue was full, by type",
                             ["type"], registry=r)
        self.kernel_lost = Gauge("kubeguard_agent_kernel_lost", "Events the kernel side lost (sensor ring buffer)",
                                 ["sensor"], registry=r)
        self.alerts = Counter("kubeguard_agent_alerts", "Alerts raised, by rule and priority",
                              ["rule", "priority"], registry=r)
        self.alert_drops = Counter("kubeguard_agent_alert_drops", "Alerts dropped because the output queue was full",
                                   registry=r)
        self.output_failures = Gauge("kubeguard_agent_output_failures", "Alerts an output could not deliver",
                                     ["output"], registry=r)
        self.sensor_up = Gauge("kubeguard_agent_sensor_up", "1 while the sensor delivers events", ["sensor"],
                               registry=r)
        self.sensor_gaps = Counter("kubeguard_agent_sensor_gaps", "Blind intervals of a sensor (restarts)",
                                   ["sensor"], registry=r)
        self.queue_depth = Gauge("kubeguard_agent_queue_depth", "Events waiting in the pipeline queue", registry=r)
        self.rule_errors = Counter("kubeguard_agent_rule_errors", "Events the rule engine failed on", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics` over HTTP in a daemon thread; bearer-token check when a token is set."""

    def __init__(self, metrics: AgentMetrics, port: int, host: str = "127.0.0.1", token: str | None = None) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback and not token:
            raise MetricsError(f"--metrics-host {host}: a non-loopback metrics address needs a token "
                               "(KUBEGUARD_METRICS_TOKEN or --metrics-token-file)")
        handler = _handler(metrics, token)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise MetricsError(f"--metrics-port {port}: cannot listen on {host}: {exc.strerror}") from exc
        except OverflowError as exc:  # a port outside 0-65535
            raise MetricsError(f"--metrics-port {port}: expected a port number 1-65535") from exc
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: AgentMetrics, token: str | None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if expected is not None:
                given = self.headers.get("Authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    self._reply(401, b"unauthorized\n", "text/plain")
                    return
            if self.path.split("?", 1)[0] != "/metrics":
                self._reply(404, b"not found\n", "text/plain")
                return
            self._reply(200, metrics.render(), CONTENT_TYPE_LATEST)

        def _reply(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
