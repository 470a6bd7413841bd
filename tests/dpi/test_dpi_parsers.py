"""The L7 parser table: what it registers, and that the engine starts parsers only through it."""

from __future__ import annotations

import pytest
from dpiutil import tcp

from kubeguard.net.flows import Flow
from kubeguard.net.identify import H2_PREFACE, PROTOCOLS
from kubeguard.net.parsers import DATAGRAM_PARSERS, STREAM_PARSERS, StreamParser, stream_parser
from kubeguard.net.proto.stratum import StratumStream


class Events:
    """Records every L7 event a parser reports."""

    body_limit = 1024

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> object:
        return lambda *args: self.seen.append((name, args[1:]))


def flow() -> Flow:
    return Flow((b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 80, 6), 1.0)


def test_every_registered_name_is_an_identified_protocol_and_every_parser_fits_the_protocol() -> None:
    assert set(STREAM_PARSERS) <= set(PROTOCOLS) and set(DATAGRAM_PARSERS) <= set(PROTOCOLS)
    for name, factory in STREAM_PARSERS.items():
        for parser in factory(Events(), flow(), [b"", b""]):  # type: ignore[arg-type]
            assert parser is None or isinstance(parser, StreamParser), name


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        stream_parser("http")(lambda events, flow, heads: (None, None))


def test_etcd_over_http2_gets_h2_headers_and_over_http1_the_http_parser() -> None:
    events = Events()
    assert STREAM_PARSERS["etcd"](events, flow(), [H2_PREFACE, b""]) == (None, None)  # type: ignore[arg-type]
    assert events.seen[0][0] == "h2_headers"
    client, _server = STREAM_PARSERS["etcd"](events, flow(), [b"GET /v2/keys HTTP/1.1\r\n", b""])  # type: ignore[arg-type]
    assert type(client).__name__ == "HttpRequestStream"


def test_the_engine_starts_the_registered_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    def factory(events: object, flw: Flow, heads: list[bytes]) -> tuple[StratumStream, None]:
        started.append(flw.proto or "")
        return StratumStream(lambda m: started.append(m.get("stratum.method", ""))), None

    monkeypatch.setitem(STREAM_PARSERS, "stratum", factory)
    subscribe = b'{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5"]}\n'
    tcp([(0, subscribe)], server=("203.0.113.50", 3333))
    assert started == ["stratum", "mining.subscribe"]
