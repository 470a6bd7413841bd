"""Coverage-guided fuzzing of the DPI parsers with atheris (libFuzzer).

Run by test_dpi_atheris.py for a bounded number of inputs; by hand for longer:
`PYTHONPATH=src python tests/dpi/atheris_dpi.py -max_total_time=600`.
Only the documented error types may escape; anything else is a crash libFuzzer reports.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from kubeguard.net.capture import CaptureError
    from kubeguard.net.decode import Decoder
    from kubeguard.net.dpi_engine import Engine
    from kubeguard.net.identify import identify
    from kubeguard.net.pcapgen import ether, ip_packets, tcp_segment
    from kubeguard.net.proto.dns import DnsError, parse_message
    from kubeguard.net.proto.http import HttpRequestStream
    from kubeguard.net.proto.sql import MysqlStream, PostgresStream
    from kubeguard.net.proto.tls import TlsStream

_ = CaptureError


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 6)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if target == 0:
        Decoder().decode(1, rest, 0.0)
    elif target == 1:
        identify("tcp", rest[: len(rest) // 2], rest[len(rest) // 2:], final=True)
        identify("udp", rest, b"")
    elif target == 2:
        try:
            parse_message(rest)
        except DnsError:
            pass
    elif target == 3:
        TlsStream(True, lambda h: None, lambda hb: None).feed(rest)
        TlsStream(False, lambda h: None, lambda hb: None).feed(b"\x16\x03\x03" + rest)
    elif target == 4:
        stream = HttpRequestStream(lambda r: None)
        stream.feed(rest)
        stream.close()
    elif target == 5:
        for client in (True, False):
            MysqlStream(client, lambda q: None, lambda f, w: None).feed(rest)
            PostgresStream(client, lambda q: None, lambda f, w: None).feed(rest)
    else:
        engine = Engine(on_alert=lambda a: None, on_flow=lambda f: None)
        half = len(rest) // 2
        for payload, (sport, dport) in ((rest[:half], (40000, 80)), (rest[half:], (80, 40000))):
            l4 = tcp_segment(sport, dport, 1, 0, 0x18, payload)
            for ip in ip_packets("10.0.0.1" if sport == 40000 else "10.0.0.2",
                                 "10.0.0.2" if sport == 40000 else "10.0.0.1", 6, l4):
                engine.feed_frames([(1.0, 1, ether(ip, sport == 40000))])
        engine.finish()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
