"""The DPI step of `kubeguard demo`: the Tesla miner found on the wire from the bundled capture."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert
from kubeguard.net.capture import read_file
from kubeguard.net.engine import Engine

if TYPE_CHECKING:
    from kubeguard.scenarios.demo import DemoContext

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
CAPTURE = SCENARIOS / "tesla_miner.pcap"
PODS = SCENARIOS / "tesla_pods.json"
EXPECTED = {"Stratum mining protocol", "Connection to a known mining pool"}


def inspect_capture(capture: Path = CAPTURE, pods: Path = PODS) -> tuple[list[Alert], list[dict[str, object]]]:
    """Alerts and flow records of the bundled capture."""
    alerts: list[Alert] = []
    flows: list[dict[str, object]] = []
    engine = Engine(podmap=PodMap.from_file(pods), on_alert=alerts.append, on_flow=flows.append)
    engine.feed_frames(read_file(capture))
    engine.finish()
    return alerts, flows


def dpi_tesla_miner(ctx: DemoContext) -> bool:
    """Step: DPI of the cluster's traffic finds the hidden miner (Stratum on port 8443 behind a CDN)."""
    if not CAPTURE.exists():
        ctx.console.print(f"{CAPTURE} is not there: nothing to inspect")
        return True
    alerts, flows = inspect_capture()
    for flow in flows:
        ctx.console.print(f"flow {flow['fd.cip']}:{flow['fd.cport']} -> {flow['fd.sip']}:{flow['fd.sport']} "
                          f"{flow['fd.l4proto']}/{flow['net.proto']}", markup=False)
    for alert in alerts:
        ctx.console.print(f"[bold red]{alert.priority}[/] {escape(alert.output)}")
    ctx.notes["dpi_alerts"] = alerts
    found = {a.rule for a in alerts if a.workload and a.workload.pod.startswith("kubernetes-dashboard")}
    return found >= EXPECTED
