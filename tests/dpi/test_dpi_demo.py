"""The bundled Tesla-miner capture: reproducible from its script, and the demo step finds the miner."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from kubeguard.net.tesla_capture import CDN_IP, POOL_NAME, STRATUM_PORT, write_capture
from kubeguard.scenarios.tesla import CAPTURE, STEPS, DemoContext, dpi_tesla_miner, inspect_capture


def test_shipped_capture_is_reproducible(tmp_path: Path) -> None:
    fresh = tmp_path / "tesla.pcap"
    write_capture(fresh)
    assert fresh.read_bytes() == CAPTURE.read_bytes()


def test_miner_found_behind_cdn_on_nonstandard_port() -> None:
    alerts, flows = inspect_capture()
    rules = {a.rule: a for a in alerts}
    assert set(rules) == {"Stratum mining protocol", "Connection to a known mining pool"}
    stratum = rules["Stratum mining protocol"].output_fields
    assert (stratum["fd.sip"], stratum["fd.sport"], stratum["net.proto"]) == (CDN_IP, STRATUM_PORT, "stratum")
    assert stratum["k8s.ns.name"] == "kube-system" and stratum["stratum.agent"].startswith("XMRig/")
    pool = rules["Connection to a known mining pool"].output_fields
    assert pool["dns.qname"] == POOL_NAME
    assert sorted(f["net.proto"] for f in flows) == ["dns", "http", "stratum"]
    assert '"pass"' not in str([a.to_json() for a in alerts])


def test_demo_step_registered_and_passes() -> None:
    assert dpi_tesla_miner in STEPS
    out = io.StringIO()
    ctx = DemoContext(Path("."), Console(file=out, width=200))
    assert dpi_tesla_miner(ctx)
    assert "Stratum mining protocol" in out.getvalue() and "kubernetes-dashboard" in out.getvalue()
