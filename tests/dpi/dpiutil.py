"""Test helpers: write conversations to a pcap, run the engine over it, collect alerts and flows."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from kubeguard.model import Alert
from kubeguard.net.capture import read_file
from kubeguard.net.dpi_engine import Detectors, Engine, EngineConfig
from kubeguard.net.pcapgen import PcapWriter, tcp_conversation, udp_exchange

CLIENT = ("10.244.1.5", 40001)
SERVER = ("10.244.2.7", 31337)


class Result:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.flows: list[dict[str, Any]] = []

    def rules(self) -> set[str]:
        return {a.rule for a in self.alerts}

    def flow(self) -> dict[str, Any]:
        assert len(self.flows) == 1, self.flows
        return self.flows[0]


def run_engine(write: Callable[[PcapWriter], object], tmp_path: Any = None, config: EngineConfig | None = None,
               detectors: Detectors | None = None, **engine_kw: Any) -> Result:
    """Write a pcap with `write`, read it back through the file reader and the engine."""
    buf = io.BytesIO()
    write(PcapWriter(buf))
    result = Result()
    engine = Engine(config, on_alert=result.alerts.append, on_flow=result.flows.append, detectors=detectors,
                    **engine_kw)
    if tmp_path is not None:
        path = tmp_path / "capture.pcap"
        path.write_bytes(buf.getvalue())
        engine.feed_frames(read_file(path))
    else:
        import dpkt

        buf.seek(0)
        engine.feed_frames((ts, 1, frame) for ts, frame in dpkt.pcap.Reader(buf))
    engine.finish()
    return result


def tcp(messages: list[tuple[int, bytes]], client: tuple[str, int] = CLIENT, server: tuple[str, int] = SERVER,
        detectors: Detectors | None = None, config: EngineConfig | None = None, **options: Any) -> Result:
    """One TCP conversation (options: segment, reorder, overlap, fragment, vlan) through the engine."""
    return run_engine(lambda w: tcp_conversation(w, client, server, messages, **options), config=config,
                      detectors=detectors)


def udp(datagrams: list[tuple[int, bytes]], client: tuple[str, int] = CLIENT, server: tuple[str, int] = SERVER,
        detectors: Detectors | None = None, **options: Any) -> Result:
    return run_engine(lambda w: udp_exchange(w, client, server, datagrams, **options), detectors=detectors)
