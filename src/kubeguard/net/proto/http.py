"""HTTP/1.x request and response parsing over reassembled streams, with httptools (llhttp).

Requests become `HttpRequest` records (body kept up to `body_limit`). When llhttp rejects a
message (conflicting Content-Length / Transfer-Encoding, bad lengths, junk), the request seen so
far is still handed on, flagged by `parse_error`, since those are the smuggling cases.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

from kubeguard.net.types import HttpRequest

MAX_HEADERS = 200
MAX_URL = 64 * 1024
TAIL = 8 * 1024  # raw bytes kept for recovering a rejected header block


class HttpRequestStream:
    """Client side of an HTTP/1.x connection: one `on_request` call per request."""

    def __init__(self, on_request: Callable[[HttpRequest], None], body_limit: int = 64 * 1024) -> None:
        self.on_request = on_request
        self.body_limit = body_limit
        self.failed = False
        self.done = False  # never: it parses to the end of the stream
        self.parse_error = ""
        self._tail = bytearray()  # the last bytes fed (8-16 KiB), to recover headers llhttp rejects
        self._parser = httptools.HttpRequestParser(self)
        self._reset()  # a request's state; on_message_begin resets it again for each request

    def _reset(self) -> None:
        self._url: list[bytes] = []
        self._url_len = 0
        self._headers: list[tuple[str, str]] = []
        self._framing: list[int] = []  # indexes of headers whose name has a framing header's length
        self._body: list[bytes] = []
        self._body_len = 0
        self._truncated = False
        self._started = False
        self._recovered = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self._started = True

    def on_url(self, url: bytes) -> None:
        room = MAX_URL - self._url_len
        if room > 0:
            self._url.append(url[:room])
            self._url_len += min(len(url), room)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if len(headers) < MAX_HEADERS:
            if len(name) in (14, 17):  # Content-Length, Transfer-Encoding: kept apart for the framing checks
                self._framing.append(len(headers))
            headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        room = self.body_limit - self._body_len
        if room <= 0:
            self._truncated = True
            return
        if len(body) > room:
            body = body[:room]
            self._truncated = True
        self._body.append(body)
        self._body_len += len(body)

    def on_message_complete(self) -> None:
        self._emit()

    def _emit(self) -> None:
        if not self._started:
            return
        self._started = False
        method = self._parser.get_method()
        version = self._parser.get_http_version() if not self.failed else "1.1"
        headers = self._headers
        framing = headers if self._recovered else [headers[i] for i in self._framing]
        req = HttpRequest(
            method=method.decode("latin-1") if method else "",
            uri=b"".join(self._url).decode("latin-1"),
            version=version or "1.1",
            headers=headers,
            body=b"".join(self._body),
            body_truncated=self._truncated,
            content_length=[v for k, v in framing if k.lower() == "content-length"],
            transfer_encoding=[v for k, v in framing if k.lower() == "transfer-encoding"],
        )
        self.on_request(req)

    def feed(self, data: bytes) -> None:
        """Feed in-order client bytes."""
        if self.failed:
            return
        self._tail += data
        if len(self._tail) > 2 * TAIL:
            del self._tail[:-TAIL]
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.failed = True  # CONNECT / Upgrade: what follows is not HTTP/1
            self._emit()
        except httptools.HttpParserError as exc:
            self.failed = True
            self.parse_error = str(exc)[:200]
            if self._started:
                self._recover_headers()
            self._emit()

    def _recover_headers(self) -> None:
        """After a parse error, read the rejected message's header lines from the raw bytes ourselves:
        the header llhttp refused (a second length, a negative one) is what detectors need to see."""
        method = self._parser.get_method() or b""
        start = self._tail.rfind(method + b" " + b"".join(self._url)[:256]) if method else -1
        if start < 0:
            return  # the header block was longer than the tail kept
        head = bytes(self._tail[start:]).split(b"\r\n\r\n", 1)[0]
        headers = []
        for line in head.split(b"\r\n")[1: MAX_HEADERS + 1]:
            name, sep, value = line.partition(b":")
            if sep:
                headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
        if len(headers) >= len(self._headers):
            self._headers = headers
            self._recovered = True

    def close(self) -> None:
        """End of stream: hand on a request whose body was cut short."""
        if self._started and not self.failed:
            self._emit()


class HttpResponseStream:
    """Server side: the status and a few headers of the first response."""

    def __init__(self, on_status: Callable[[int, list[tuple[str, str]]], None]) -> None:
        self._on_status = on_status
        self.failed = False
        self.done = False
        self._headers: list[tuple[str, str]] = []
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) < MAX_HEADERS:
            self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.done = True
        self._on_status(self._parser.get_status_code(), self._headers)

    def feed(self, data: bytes) -> None:
        if self.failed or self.done:
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.failed = True

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""
