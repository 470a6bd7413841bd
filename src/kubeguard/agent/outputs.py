"""Alert outputs: Falco-format JSON lines (stdout or file), HTTP webhook with retry, syslog.

Every output takes a batch of alerts (`send`) and is flushed/closed on shutdown. An output that
fails keeps the agent running: the failure is counted (`failures`) and reported once per kind of
error on stderr; the alerts are in the store anyway (the store is written before any output).
Credentials in a webhook URL never appear in messages (`mask_url`).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from kubeguard.errors import KubeguardError
from kubeguard.model import Alert

log = logging.getLogger(__name__)


class OutputError(KubeguardError):
    """An alert output that cannot be set up (bad URL, address or header; unwritable file)."""


# Falco priority -> syslog severity (RFC 5424): Emergency 0 ... Debug 7.
SYSLOG_SEVERITY = {"Emergency": 0, "Alert": 1, "Critical": 2, "Error": 3, "Warning": 4, "Notice": 5,
                   "Informational": 6, "Debug": 7}
SYSLOG_FACILITY_USER = 1


class Output:
    """One destination for alerts."""

    name = "output"

    def __init__(self) -> None:
        self.sent = 0
        self.failures = 0
        self._warned: set[str] = set()

    def send(self, alerts: Sequence[Alert]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Push buffered alerts out (called after each batch and at shutdown)."""

    def close(self) -> None:
        self.flush()

    def _fail(self, reason: str, count: int) -> None:
        self.failures += count
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(f"{self.name} output: {reason} ({count} alert(s) not delivered; they are in the store)")


class JsonLinesOutput(Output):
    """Falco's `json_output` lines to a stream (stdout) or a file (appended, created 0600)."""

    name = "json"

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.path = path
        if path is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise OutputError(f"{path}: cannot open alerts output: {exc.strerror}") from exc
            self.stream: IO[str] = os.fdopen(fd, "a", encoding="utf-8")
            self.name = f"alerts file {path}"
        else:
            self.stream = stream or sys.stdout
            self.name = "stdout"

    def send(self, alerts: Sequence[Alert]) -> None:
        try:
            self.stream.write("".join(a.to_json() + "\n" for a in alerts))
            self.stream.flush()
            self.sent += len(alerts)
        except (OSError, ValueError) as exc:
            self._fail(str(exc), len(alerts))

    def close(self) -> None:
        self.flush()
        if self.path is not None:
            self.stream.close()


def mask_url(url: str) -> str:
    """The URL with any user:password and query string hidden (`https://***@host/path?***`)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


class WebhookOutput(Output):
    """POST each alert as Falco's JSON (like Falco's http_output), retrying with backoff.

    Retries on connection errors, timeouts, HTTP 429 and 5xx; gives up on other 4xx (the receiver
    rejected the alert; retrying will not help). `headers` may carry an Authorization header.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None, retries: int = 4,
                 backoff: float = 0.2, timeout: float = 5.0) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutputError(f"--webhook {mask_url(url)}: expected an http:// or https:// URL")
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if parts.username is not None:  # user:password@ in the URL -> Basic auth, not part of the URL
            creds = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers.setdefault("Authorization", "Basic " + base64.b64encode(creds.encode()).decode())
            host = parts.netloc.rsplit("@", 1)[1]
            url = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.retried = 0
        self.name = f"webhook {mask_url(url)}"

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self._post(alert.to_json().encode())

    def _post(self, body: bytes) -> None:
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, OSError) as exc:
                reason = str(getattr(exc, "reason", exc))
        self._fail(reason, 1)


class SyslogOutput(Output):
    """RFC 5424 messages (facility user, severity from the priority) over UDP or a unix socket.

    `address`: ``udp://HOST:PORT``, ``unix:///dev/log`` (datagram) or a bare socket path.
    """

    def __init__(self, address: str, hostname: str | None = None, app: str = "kubeguard") -> None:
        super().__init__()
        self.address = address
        self.hostname = hostname or socket.gethostname()
        self.app = app
        self.name = f"syslog {address}"
        if address.startswith("udp://"):
            host, _, port = address[len("udp://"):].rpartition(":")
            if not host or not port.isdigit():
                raise OutputError(f"--syslog {address}: expected udp://HOST:PORT")
            self.target: str | tuple[str, int] = (host.strip("[]"), int(port))
            family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            path = address[len("unix://"):] if address.startswith("unix://") else address
            if not path.startswith("/"):
                raise OutputError(f"--syslog {address}: expected udp://HOST:PORT or unix:///path/to/socket")
            self.target = path
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def format(self, alert: Alert) -> bytes:
        """``<PRI>1 TIME HOST kubeguard PID - - JSON`` with PRI = facility * 8 + severity."""
        pri = SYSLOG_FACILITY_USER * 8 + SYSLOG_SEVERITY.get(alert.priority, 4)
        return f"<{pri}>1 {alert.time} {self.hostname} {self.app} {os.getpid()} - - {alert.to_json()}".encode()

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            try:
                self.sock.sendto(self.format(alert), self.target)
                self.sent += 1
            except OSError as exc:
                self._fail(exc.strerror or str(exc), 1)

    def close(self) -> None:
        self.sock.close()


def parse_header(text: str) -> tuple[str, str]:
    """``Name: value`` -> (name, value); OutputError otherwise (the value is never echoed)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise OutputError(f"--webhook-header {name.strip() or '?'}: expected 'Name: value'")
    return name.strip(), value.strip()
