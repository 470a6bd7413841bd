"""What the DPI drops (flow table full, fragments, kernel ring) becomes a counted alert, not a silent loss."""

from __future__ import annotations

from kubeguard.model import Alert
from kubeguard.net.dpi_engine import Engine, EngineConfig
from kubeguard.net.drops import DPI_DROP_RULE
from kubeguard.net.pcapgen import ether, ip_packets, tcp_segment


def syn(engine: Engine, n: int, ts: float) -> None:
    l4 = tcp_segment(40000 + n % 20000, 80, 1, 0, 0x02, b"")
    for ip in ip_packets(f"10.1.{n // 250}.{n % 250 + 1}", "10.0.0.2", 6, l4):
        engine.feed_frames([(ts, 1, ether(ip, True))])


def test_flow_table_overflow_is_alerted_with_its_count() -> None:
    alerts: list[Alert] = []
    engine = Engine(EngineConfig(max_flows=10, drop_report_interval=10.0), on_alert=alerts.append)
    for n in range(100):
        syn(engine, n, 1.0 + n * 0.01)  # 1 s of packet time: one report at most inside the interval
    for n in range(100, 150):
        syn(engine, n, 20.0 + n * 0.01)  # the interval passed: the next report
    engine.finish()
    drops = [a for a in alerts if a.rule == DPI_DROP_RULE]
    assert engine.table.evicted_full == 140
    assert len(drops) == 2, [a.output for a in drops]
    assert drops[0].priority == "Critical"
    assert drops[-1].output_fields["flows.evicted_full"] == 140
    assert sum(a.output_fields.get("flows.evicted_full.new", 0) for a in drops) == 140


def test_kernel_drops_are_alerted_at_the_end_and_none_without_drops() -> None:
    alerts: list[Alert] = []
    engine = Engine(on_alert=alerts.append)
    for n in range(5):
        syn(engine, n, 1.0)
    engine.finish()
    assert not [a for a in alerts if a.rule == DPI_DROP_RULE]
    engine.drops.add_kernel_drops(7)
    engine.finish()
    (drop,) = [a for a in alerts if a.rule == DPI_DROP_RULE]
    assert drop.output_fields["capture.kernel_drops"] == 7 and "end of input" in drop.output
