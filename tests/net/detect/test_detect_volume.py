"""Flood and scan detection from packet headers."""

from __future__ import annotations

from kubeguard.net.detect.volume import ACK, SYN, ScanFloodDetector, ScanFloodThresholds


def run(det: ScanFloodDetector, packets: list[tuple]) -> list[str]:
    return [d.rule for p in packets for d in det.observe_packet(*p)]


def test_vertical_scan() -> None:
    pkts = [(1.0 + p / 100, "10.1.0.5", "10.1.0.9", "tcp", p, SYN, None) for p in range(1, 200)]
    assert run(ScanFloodDetector(), pkts) == ["Vertical port scan"]


def test_horizontal_scan_udp() -> None:
    pkts = [(1.0 + h / 10, "10.1.0.5", f"10.2.0.{h}", "udp", 161, 0, None) for h in range(1, 60)]
    assert run(ScanFloodDetector(), pkts) == ["Horizontal port scan"]


def test_ip_protocol_numbers_accepted() -> None:
    pkts = [(1.0 + h / 10, "10.1.0.5", f"10.2.0.{h}", 17, 53, 0, None) for h in range(1, 60)]
    pkts += [(3.0, "10.1.0.5", "10.1.0.9", 1, 0, 0, 8)] * 600
    assert run(ScanFloodDetector(), pkts) == ["Horizontal port scan", "ICMP flood"]


def test_null_and_fin_probes_count_as_scan() -> None:
    pkts = [(1.0, "10.1.0.5", "10.1.0.9", "tcp", p, 0 if p % 2 else 0x01, None) for p in range(1, 30)]
    assert "Vertical port scan" in run(ScanFloodDetector(), pkts)


def test_established_traffic_is_not_a_scan() -> None:
    pkts = [(1.0 + i / 1000, "10.1.0.5", "10.1.0.9", "tcp", 443, ACK, None) for i in range(5000)]
    pkts += [(2.0 + i, "10.1.0.5", "10.1.0.9", "tcp", 443, SYN, None) for i in range(50)]
    assert run(ScanFloodDetector(), pkts) == []


def test_syn_flood_from_spoofed_sources() -> None:
    det = ScanFloodDetector(ScanFloodThresholds(syn_rate=300, session_rate=10**6))
    pkts = [(5.0 + i / 1000, f"198.51.{i % 200}.{i // 200}", "10.1.0.9", "tcp", 80, SYN, None) for i in range(900)]
    assert run(det, pkts) == ["TCP SYN flood"]


def test_icmp_flood() -> None:
    pkts = [(7.0 + i / 10000, "10.1.0.5", "10.1.0.9", "icmp", 0, 0, 8) for i in range(600)]
    pkts += [(7.0, "10.1.0.5", "10.1.0.9", "icmp", 0, 0, 0)] * 1000  # echo replies do not count
    assert run(ScanFloodDetector(), pkts) == ["ICMP flood"]


def test_session_rate() -> None:
    det = ScanFloodDetector(ScanFloodThresholds(session_rate=50))
    pkts = [(9.0 + i / 1000, "10.1.0.5", "10.1.0.9", "tcp", 8080, SYN, None) for i in range(60)]
    assert run(det, pkts) == ["Excessive session rate"]


def test_memory_bounded_under_spoofing() -> None:
    det = ScanFloodDetector(ScanFloodThresholds(max_sources=100, max_fanout=16))
    for i in range(20000):
        src, dst = f"10.{i % 250}.{i // 250 % 250}.1", f"10.9.{i % 97}.{i % 89}"
        det.observe_packet(1.0, src, dst, "udp", i % 65535, 0, None)
    assert len(det.sources) <= 100 and len(det.targets) <= 100
    assert all(len(s.ports_by_dst) <= 16 and len(s.dsts_by_port) <= 16 for s in det.sources.values())
