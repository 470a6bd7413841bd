"""The L7 parser table: which parsers the engine starts on a flow once its protocol is identified.

Plug-ins meet through tables: a protocol parser registers a factory under the protocol names that
`identify` gives, and the engine looks the name up in `STREAM_PARSERS` (TCP, one `StreamParser`
per direction) or `DATAGRAM_PARSERS` (UDP, one call per datagram). A factory wires its parsers'
callbacks to the engine's `L7Events`; it knows nothing of flows beyond the one it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from kubeguard.net.flows import Flow
from kubeguard.net.identify import H2_PREFACE
from kubeguard.net.proto.dns import DnsTcpStream
from kubeguard.net.proto.http import HttpRequestStream, HttpResponseStream
from kubeguard.net.proto.sql import MysqlStream, PostgresStream
from kubeguard.net.proto.ssh import SshBanner, SshStream
from kubeguard.net.proto.stratum import MAX_MESSAGES, StratumStream
from kubeguard.net.proto.stratum import parse_line as parse_stratum_line
from kubeguard.net.proto.tls import Heartbeat, Hello, TlsStream
from kubeguard.net.types import HttpRequest
from kubeguard.tables import file_under


@runtime_checkable
class StreamParser(Protocol):
    """One direction of an L7 protocol: reassembled bytes in, in order; findings out through callbacks."""

    failed: bool  # cannot go on (bad framing, a gap in the bytes): the engine stops feeding it
    done: bool  # nothing more to parse (e.g. TLS past its handshake): the engine stops feeding it

    def feed(self, data: bytes) -> None:
        """The next bytes of this direction."""

    def close(self) -> None:
        """End of the direction: report anything still buffered."""


class L7Events(Protocol):
    """What the parsers report about a flow; the engine implements it."""

    @property
    def body_limit(self) -> int:
        """HTTP request body bytes handed to detectors."""
        ...

    def http_request(self, flow: Flow, req: HttpRequest) -> None: ...

    def http_status(self, flow: Flow, status: int, headers: list[tuple[str, str]]) -> None: ...

    def h2_headers(self, flow: Flow, head: bytes) -> None: ...

    def tls_hello(self, flow: Flow, hello: Hello, client: bool, sslv2: bool) -> None: ...

    def heartbeat(self, flow: Flow, hb: Heartbeat, client: bool) -> None: ...

    def ssh_banner(self, flow: Flow, d: int, banner: SshBanner) -> None: ...

    def dns_message(self, flow: Flow, msg: bytes) -> None: ...

    def sql_query(self, flow: Flow, query: str) -> None: ...

    def sql_auth(self, flow: Flow, failed: bool, detail: str) -> None: ...

    def stratum(self, flow: Flow, fields: dict[str, str]) -> None: ...


ParserPair = tuple[StreamParser | None, StreamParser | None]  # (client to server, server to client)
StreamParserFactory = Callable[[L7Events, Flow, list[bytes]], ParserPair]  # heads: first bytes per direction
DatagramParser = Callable[[L7Events, Flow, bytes], None]

STREAM_PARSERS: dict[str, StreamParserFactory] = {}
DATAGRAM_PARSERS: dict[str, DatagramParser] = {}


def stream_parser(*protocols: str) -> Callable[[StreamParserFactory], StreamParserFactory]:
    """Register a TCP parser factory under `protocols` (a name registered twice is an error)."""
    return file_under(STREAM_PARSERS, protocols, "stream parser")


def datagram_parser(*protocols: str) -> Callable[[DatagramParser], DatagramParser]:
    """Register a UDP datagram handler under `protocols` (a name registered twice is an error)."""
    return file_under(DATAGRAM_PARSERS, protocols, "datagram parser")


# ---- the built-in parsers ---------------------------------------------------------------------------------------


@stream_parser("http", "elasticsearch")
def _http(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (HttpRequestStream(lambda r: events.http_request(flow, r), events.body_limit),
            HttpResponseStream(lambda status, hdrs: events.http_status(flow, status, hdrs)))


@stream_parser("http2", "grpc")
def _h2(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    events.h2_headers(flow, heads[0])  # the first HEADERS frame names the request; HPACK state is not kept
    return None, None


@stream_parser("etcd")
def _etcd(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    """etcd speaks gRPC over HTTP/2 (v3) or JSON over HTTP/1 (v2 and the gRPC gateway)."""
    if heads[0].startswith(H2_PREFACE):
        return _h2(events, flow, heads)
    return _http(events, flow, heads)


@stream_parser("tls")
def _tls(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    client: TlsStream = TlsStream(True, lambda h: events.tls_hello(flow, h, True, client.sslv2),
                                  lambda hb: events.heartbeat(flow, hb, True))
    server: TlsStream = TlsStream(False, lambda h: events.tls_hello(flow, h, False, server.sslv2),
                                  lambda hb: events.heartbeat(flow, hb, False))
    return client, server


@stream_parser("ssh")
def _ssh(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (SshStream(lambda b: events.ssh_banner(flow, 0, b)), SshStream(lambda b: events.ssh_banner(flow, 1, b)))


@stream_parser("dns")
def _dns_tcp(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (DnsTcpStream(lambda m: events.dns_message(flow, m)), DnsTcpStream(lambda m: events.dns_message(flow, m)))


@stream_parser("mysql")
def _mysql(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (MysqlStream(True, lambda q: events.sql_query(flow, q), lambda f, w: events.sql_auth(flow, f, w)),
            MysqlStream(False, lambda q: None, lambda f, w: events.sql_auth(flow, f, w),
                        lambda v: flow.meta.__setitem__("mysql.version", v)))


@stream_parser("postgresql")
def _postgres(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (PostgresStream(True, lambda q: events.sql_query(flow, q), lambda f, w: None),
            PostgresStream(False, lambda q: None, lambda f, w: events.sql_auth(flow, f, w)))


@stream_parser("stratum")
def _stratum(events: L7Events, flow: Flow, heads: list[bytes]) -> ParserPair:
    return (StratumStream(lambda m: events.stratum(flow, m)), StratumStream(lambda m: events.stratum(flow, m)))


@datagram_parser("dns")
def _dns_datagram(events: L7Events, flow: Flow, payload: bytes) -> None:
    events.dns_message(flow, payload)


@datagram_parser("stratum")
def _stratum_datagram(events: L7Events, flow: Flow, payload: bytes) -> None:
    for line in payload.splitlines()[:MAX_MESSAGES]:
        events.stratum(flow, parse_stratum_line(line))
