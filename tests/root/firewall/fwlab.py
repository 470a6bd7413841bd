"""Helpers for the inline firewall's root tests: a `kubeguard firewall` process, real servers in pods."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from podlab import Pod

REPO = Path(__file__).resolve().parents[3]
PYTHON = os.path.realpath(sys.executable)

# An HTTP/1.1 keep-alive server that logs every request it *completes* (method, path, X-Test-Id).
HTTP_SERVER = r"""
import http.server, sys
log = open(sys.argv[3], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK wait per request)
    def _serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        log.write(f"{self.command} {self.headers.get('X-Test-Id', '-')} {len(body)} {self.path}\n")
        out = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = _serve
    def log_message(self, *a): pass
    def address_string(self): return self.client_address[0]
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):  # HTTPServer's own resolves its name: a 10 s DNS stall in a netns without DNS
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
srv = Server((sys.argv[1], int(sys.argv[2])), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
"""

# Sends the requests of a JSON file ([[method, uri, headers, body], ...]) over `per_conn` keep-alive
# connections each, raw, and prints one JSON line per request: {"id", "status" or "error"}.
HTTP_CLIENT = r"""
import json, socket, sys
host, port, path, per_conn = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
reqs = json.load(open(path))
def read_response(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed without an answer")
    status = int(line.split()[1])
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    f.read(length)
    return status
i = 0
while i < len(reqs):
    s = socket.create_connection((host, port), timeout=20)
    f = s.makefile("rb")
    for method, uri, headers, body, rid in reqs[i:i + per_conn]:
        body = body.encode("latin-1")
        head = f"{method} {uri} HTTP/1.1\r\nHost: shop.example\r\nX-Test-Id: {rid}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        try:
            s.sendall(head.encode("latin-1") + b"\r\n" + body)
            out = {"id": rid, "status": read_response(f)}
        except OSError as exc:
            out = {"id": rid, "error": type(exc).__name__}
        print(json.dumps(out), flush=True)
        i += 1
        if "status" not in out or out["status"] != 200:
            break
    s.close()
"""


def wait_line(proc: subprocess.Popen[str], stream: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    pipe = getattr(proc, stream)
    seen = []
    while time.monotonic() < deadline:
        line = pipe.readline()
        if text in line:
            return line
        seen.append(line)
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {text!r}: {''.join(seen)[-2000:]}")
    raise AssertionError(f"no {text!r} within {timeout} s")


def start_http_server(pod: Pod, port: int, log: Path) -> subprocess.Popen[str]:
    proc = pod.popen([PYTHON, "-c", HTTP_SERVER, pod.ip, str(port), str(log)], stdout=subprocess.PIPE, text=True)
    wait_line(proc, "stdout", "ready")
    return proc


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-w", "5", "-S"], capture_output=True, text=True, check=True).stdout


class FirewallProcess:
    """`kubeguard firewall` as a child process; alerts (Falco JSON lines) collected from its stdout."""

    def __init__(self, tmp_path: Path, pods: Path, *args: str) -> None:
        self.queue = random.randrange(1000, 60000)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KUBEGUARD_DB": str(tmp_path / "alerts.db")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeguard", "firewall", "--pods", str(pods), "--queue-num", str(self.queue),
             "--no-store", "-o", "json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.chain = f"KG-FW{self.queue}"
        self.ready = wait_line(self.proc, "stderr", "firewall: inline for")
        self.out = ""
        self.err = ""
        # Drain both pipes while it runs: alert lines beyond a pipe's 64 KiB would block the firewall's
        # writes, and with them its packet verdicts (the client's connects then time out).
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._readers = [threading.Thread(target=self._drain, args=(name,), daemon=True) for name in self._lines]
        for reader in self._readers:
            reader.start()

    def _drain(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self._lines[name].append(line)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=30)
        self.out = "".join(self._lines["stdout"])
        self.err = "".join(self._lines["stderr"])
        return self.proc.returncode

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]
