"""Outputs against real local receivers: an HTTP server for the webhook, UDP and unix syslog sockets."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubeguard.agent.outputs import JsonLinesOutput, SyslogOutput, WebhookOutput, mask_url, parse_header
from kubeguard.cliutil import UserError
from kubeguard.model import Alert


def alert(rule: str = "Terminal shell in container", priority: str = "Notice") -> Alert:
    return Alert(rule=rule, priority=priority, output="A shell was spawned", hostname="node-1",
                 output_fields={"k8s.pod.name": "web", "container.id": "ab" * 32}, tags=["T1059"])


class Receiver:
    """A real HTTP server: the first `fail_first` POSTs get `fail_code`, then 200."""

    def __init__(self, fail_first: int = 0, fail_code: int = 503) -> None:
        self.bodies: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.attempts <= fail_first:
                    self.send_response(fail_code)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def test_webhook_retries_until_delivered(receiver: Receiver) -> None:
    out = WebhookOutput(receiver.url, headers={"Authorization": "Bearer s3cret"}, retries=3, backoff=0.01)
    out.send([alert()])
    assert receiver.attempts == 3
    assert out.sent == 1 and out.retried == 2 and out.failures == 0
    assert receiver.bodies[0]["rule"] == "Terminal shell in container"
    assert receiver.bodies[0]["output_fields"]["k8s.pod.name"] == "web"
    assert receiver.headers[0]["Authorization"] == "Bearer s3cret"


def test_webhook_gives_up_on_client_errors_and_counts_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    rejecting = Receiver(fail_first=100, fail_code=400)
    try:
        out = WebhookOutput(rejecting.url.replace("http://", "http://user:pw@"), retries=3, backoff=0.01)
        out.send([alert(), alert()])
        assert rejecting.attempts == 2  # no retry on 400
        assert out.failures == 2 and out.sent == 0
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "HTTP 400" in warnings[0] and "pw" not in warnings[0]
    finally:
        rejecting.close()


def test_webhook_unreachable_fails_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = WebhookOutput(f"http://127.0.0.1:{port}/", retries=2, backoff=0.01, timeout=1)
    out.send([alert()])
    assert out.failures == 1 and out.retried == 2


def test_webhook_rejects_a_bad_url() -> None:
    with pytest.raises(UserError, match="expected an http"):
        WebhookOutput("ftp://host/x")


def test_mask_url_hides_credentials() -> None:
    assert mask_url("https://bob:hunter2@hooks.example/x?token=abc") == "https://***@hooks.example/x?***"
    with pytest.raises(UserError) as exc:
        parse_header("novalue")
    assert "novalue" in str(exc.value)
    assert parse_header("Authorization: Bearer x") == ("Authorization", "Bearer x")


def test_syslog_over_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        out = SyslogOutput(f"udp://127.0.0.1:{rx.getsockname()[1]}", hostname="node-1")
        out.send([alert(priority="Critical"), alert(priority="Notice")])
        first, second = rx.recv(65536).decode(), rx.recv(65536).decode()
        out.close()
    assert first.startswith("<10>1 ")  # user facility (1) * 8 + critical (2)
    assert second.startswith("<13>1 ")  # notice (5)
    header, payload = first.split(" - - ", 1)
    assert " node-1 kubeguard " in header
    assert json.loads(payload)["rule"] == "Terminal shell in container"


def test_syslog_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(str(path))
        rx.settimeout(5)
        out = SyslogOutput(f"unix://{path}")
        out.send([alert(priority="Warning")])
        message = rx.recv(65536).decode()
        out.close()
    assert message.startswith("<12>1 ")
    assert json.loads(message.split(" - - ", 1)[1])["priority"] == "Warning"


def test_syslog_to_a_missing_socket_counts_a_failure(tmp_path: Path) -> None:
    out = SyslogOutput(str(tmp_path / "nobody-listens"))
    out.send([alert()])
    assert out.failures == 1
    with pytest.raises(UserError, match="udp://HOST:PORT"):
        SyslogOutput("udp://nohostport")


def test_json_lines_file_is_appended_and_private(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    out = JsonLinesOutput(path)
    out.send([alert(), alert("Read sensitive file untrusted")])
    out.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["rule"] for x in lines] == ["Terminal shell in container", "Read sensitive file untrusted"]
    assert set(lines[0]) == {"time", "rule", "priority", "source", "hostname", "output", "output_fields", "tags"}
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UserError, match="cannot open alerts output"):
        JsonLinesOutput(tmp_path / "missing-dir" / "a.jsonl")
