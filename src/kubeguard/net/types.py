"""Records passed from the DPI engine's parsers to its detectors.

The engine (capture, flows, reassembly, parsers) produces these; detectors only read them and
return `Detection`s, which the engine turns into Alerts with the flow's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeguard.model import Severity


@dataclass(slots=True)
class HttpRequest:
    """One HTTP/1.x request as parsed from a reassembled client stream (body up to stream depth)."""

    method: str
    uri: str
    version: str = "1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)  # in wire order, names as sent
    body: bytes = b""
    body_truncated: bool = False
    # Framing facts the parser saw, for smuggling / length checks.
    content_length: list[str] = field(default_factory=list)  # every Content-Length value as sent
    transfer_encoding: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """First header of that name (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@dataclass(slots=True)
class DnsQuestion:
    """One DNS question (or answer-bearing response) seen on the wire."""

    qname: str
    qtype: str  # "A", "TXT", "NULL", "AXFR", ... or the number as text
    is_response: bool = False
    rcode: int = 0
    answer_bytes: int = 0
    answer_names: tuple[str, ...] = ()  # CNAME / NS / PTR targets in a response, lowercase


@dataclass(slots=True)
class Detection:
    """What a detector found: the engine adds flow and pod identity and makes an Alert of it."""

    rule: str  # stable name, e.g. "HTTP SQL injection"
    severity: Severity
    evidence: str  # short, secrets masked
    mitre: tuple[str, ...] = ()
    fields: dict[str, object] = field(default_factory=dict)  # extra output fields (e.g. http.uri)
    tags: tuple[str, ...] = ()
