"""A replay Kubernetes API server for tests: recorded JSON answers over real HTTPS.

The certificate is made per test with `openssl` (self-signed, SAN 127.0.0.1); the kubeconfig
written for the client trusts exactly that certificate and authenticates with a bearer token, so
the real `kubernetes` client runs its real TLS and auth code. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import require


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Self-signed certificate and key for 127.0.0.1 (skips, or fails under CI, without openssl)."""
    require(shutil.which("openssl") is not None, "openssl")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=kubeguard-replay",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


class ReplayServer:
    """Serves `responses` ({path[?continue=token]: {"status", "body"}}) to clients holding `token`."""

    def __init__(self, responses: dict[str, dict[str, Any]], directory: Path) -> None:
        self.responses = responses
        self.token = secrets.token_hex(16)
        self.requests: list[tuple[str, str]] = []
        self.cert, key = make_certificate(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path, context: str = "replay", token: str | None = None) -> Path:
        """A kubeconfig for this server (YAML is a superset of JSON: written as JSON)."""
        ca = base64.b64encode(self.cert.read_bytes()).decode()
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "replay", "cluster": {"server": self.url, "certificate-authority-data": ca}}],
            "users": [{"name": "scanner", "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "replay", "user": "scanner"}}],
        }))
        return path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _answer(self) -> None:
                server.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                if self.command != "GET":
                    return self._send(405, {"kind": "Status", "code": 405, "reason": "MethodNotAllowed"})
                parts = urlsplit(self.path)
                token = parse_qs(parts.query).get("continue", [""])[0]
                key = parts.path + (f"?continue={token}" if token else "")
                answer = server.responses.get(key)
                if answer is None:
                    return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return self._send(answer["status"], answer["body"])

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        return Handler
