"""Replay proof of the coverage mapping: for each covered ATT&CK for Containers technique, every mapped rule,
posture check and DPI detection fires on recorded input — events through the rule engine, manifests and
cluster dumps through the posture checks, packets through the DPI engine and its detectors."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml
from tests.dpi.dpiutil import Result, tcp
from tests.scan.checkutil import check_findings

from kubeguard.coverage.matrix import TechniqueCoverage, attack_matrix, ms_matrix
from kubeguard.net.detect.sql import SqlAuthMonitor, SqlAuthThresholds
from kubeguard.net.detect.volume import SYN, ScanFloodDetector, ScanFloodThresholds
from kubeguard.net.tesla_capture import write_capture
from kubeguard.rules import RuleEngine

TESTS = Path(__file__).resolve().parents[1]
CASES = yaml.safe_load((TESTS / "rules" / "fixtures" / "default_rule_cases.yaml").read_text())
FIXTURE_DIRS = [*sorted((TESTS / "fixtures" / "clusters").iterdir()), TESTS / "fixtures" / "scan" / "controlplane",
                TESTS / "fixtures" / "scan" / "manifests", TESTS / "fixtures" / "scan" / "dump",
                TESTS / "fixtures" / "coverage", TESTS.parent / "examples" / "tesla"]
COVERED = [t for t in attack_matrix().techniques if t.covered]


@cache
def _engine() -> RuleEngine:
    return RuleEngine.load()


def _rule_fires(rule: str) -> bool:
    """The rule's recorded positive events (tests/rules/fixtures) through the default rule engine."""
    events = CASES["cases"][rule]["positive"]
    return any(rule in [a.rule for a in _engine().process({**CASES["base"], **event})] for event in events)


@cache
def _posture_fired() -> frozenset[str]:
    """Every check that fires over the recorded clusters, control-plane files and manifests."""
    from kubeguard.cluster.loader import load_path

    fired: set[str] = set()
    for root in FIXTURE_DIRS:
        fired |= {f.check for f in check_findings(load_path(root))}
    return frozenset(fired)


def _scan_flood(packets: list[tuple], thresholds: ScanFloodThresholds | None = None) -> set[str]:
    det = ScanFloodDetector(thresholds or ScanFloodThresholds())
    return {d.rule for p in packets for d in det.observe_packet(*p)}


@cache
def _dpi_fired() -> frozenset[str]:
    """DPI detections over recorded traffic: attack requests and the Tesla capture through the engine, packet
    headers through the scan/flood detector, login failures through the SQL auth monitor."""
    fired: set[str] = set()
    http = (b"GET /items?id=1%27%20OR%20%271%27=%271 HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"GET /ping?host=127.0.0.1;cat%20/etc/passwd HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"GET /page?name=%3C%3Fphp%20system(%24_GET%5B'c'%5D)%3B%20%3F%3E HTTP/1.1\r\nHost: shop\r\n\r\n")
    for request in http:
        fired |= tcp([(0, request), (1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
                     server=("10.244.2.7", 80)).rules()
    import tempfile

    from kubeguard.net.capture import read_file
    from kubeguard.net.dpi_engine import Engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tesla.pcap"
        write_capture(path)
        result = Result()
        engine = Engine(None, on_alert=result.alerts.append, on_flow=result.flows.append)
        engine.feed_frames(read_file(path))
        engine.finish()
        fired |= result.rules()
    fired |= _scan_flood([(1.0 + p / 100, "10.1.0.5", "10.1.0.9", "tcp", p, SYN, None) for p in range(1, 200)])
    fired |= _scan_flood([(1.0 + h / 10, "10.1.0.5", f"10.2.0.{h}", "udp", 161, 0, None) for h in range(1, 60)])
    fired |= _scan_flood([(5.0 + i / 1000, f"198.51.{i % 200}.{i // 200}", "10.1.0.9", "tcp", 80, SYN, None)
                          for i in range(900)], ScanFloodThresholds(syn_rate=300, session_rate=10**6))
    fired |= _scan_flood([(7.0 + i / 10000, "10.1.0.5", "10.1.0.9", "icmp", 0, 0, 8) for i in range(600)])
    monitor = SqlAuthMonitor(SqlAuthThresholds(failures=5, window=10))
    for i in range(5):
        fired |= {d.rule for d in monitor.observe(("10.0.0.7", "10.0.0.9", 3306), True, i * 0.5)}
    from kubeguard.net.detect.sql import inspect_sql_query

    fired |= {d.rule for d in inspect_sql_query("SELECT * FROM users WHERE name = 'admin' OR '1'='1'")}
    return frozenset(fired)


@pytest.mark.parametrize("technique", COVERED, ids=[t.id for t in COVERED])
def test_technique_triggered(technique: TechniqueCoverage) -> None:
    missing = [f"rule {r}" for r in technique.rules if not _rule_fires(r)]
    missing += [f"check {c}" for c in technique.checks if c not in _posture_fired()]
    missing += [f"dpi {d}" for d in technique.dpi if d not in _dpi_fired()]
    assert not missing, f"{technique.id}: mapped but not triggered by the replay: {missing}"


MS_COVERED = [t for t in ms_matrix().techniques if t.covered]


@pytest.mark.parametrize("technique", MS_COVERED, ids=[t.id for t in MS_COVERED])
def test_ms_technique_triggered(technique: TechniqueCoverage) -> None:
    test_technique_triggered(technique)
