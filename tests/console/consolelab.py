"""Helpers for console tests: an app on a fresh database, first-run enrolment, logins with real TOTP codes."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient

from kubeguard.console.app import create_app
from kubeguard.store.sqldb import Database

SETUP_TOKEN = "setup-token-for-tests-0123456789"
ADMIN_PASSWORD = "Blue-Kettle-Orbit-42"
VIEWER_PASSWORD = "Green-Lantern-Field-77"


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@dataclass
class Codes:
    """TOTP codes for one secret, each time step used once (the console refuses replays). Only the current step
    and the next one are handed out: the console accepts a step within one of its own, so each stays valid for
    at least one whole interval after it is made (the previous step, valid only until the current interval ends,
    was refused when a slow browser submitted it after the boundary)."""

    secret: str
    used: set[int] = field(default_factory=set)

    def next(self) -> str:
        totp = pyotp.TOTP(self.secret)
        while True:
            now = int(time.time()) // totp.interval
            for step in (now, now + 1):
                if step not in self.used and all(step > u for u in self.used):
                    self.used.add(step)
                    return totp.generate_otp(step)
            time.sleep(totp.interval - time.time() % totp.interval + 0.05)  # all steps of the window are spent


def new_app(tmp_path: Path, db: str | None = None, **kwargs: object):
    database = Database(db or str(tmp_path / "console.db"))
    return create_app(database, setup_token=SETUP_TOKEN, **kwargs)


def client(app) -> TestClient:
    return TestClient(app, base_url="https://testserver")


def enrol(c: TestClient, token: str, password: str, name: str = "", path: str = "/setup") -> Codes:
    """Run the enrolment form and the TOTP step; returns the user's codes (the client holds a session)."""
    page = c.get(path if path == "/setup" else f"{path}?token={token}")
    data = {"csrf": form_csrf(page.text), "token": token, "password": password, "password2": password}
    if name:
        data["name"] = name
    answer = c.post(path, data=data, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = c.get("/enrol/totp")
    secret = re.search(r'id="secret">([A-Z2-7]+)<', page.text)
    assert secret and "<svg" in page.text
    codes = Codes(secret.group(1))
    answer = c.post("/enrol/totp", data={"csrf": form_csrf(page.text), "code": codes.next()}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/alerts", answer.text
    return codes


def login(c: TestClient, name: str, password: str, code: str):
    page = c.get("/login")
    return c.post("/login", data={"csrf": form_csrf(page.text), "name": name, "password": password, "code": code},
                  follow_redirects=False)


def session_csrf(c: TestClient) -> str:
    """The CSRF token of the client's session (from any page with a form)."""
    return form_csrf(c.get("/alerts").text)


def admin_client(app) -> tuple[TestClient, Codes]:
    c = client(app)
    return c, enrol(c, SETUP_TOKEN, ADMIN_PASSWORD, name="alice")


def add_viewer(admin: TestClient, app, name: str = "victor") -> tuple[TestClient, Codes]:
    answer = admin.post("/api/users", json={"name": name, "role": "viewer"},
                        headers={"X-CSRF-Token": session_csrf(admin)})
    assert answer.status_code == 201, answer.text
    c = client(app)
    return c, enrol(c, answer.json()["enrolment_token"], VIEWER_PASSWORD, path="/enrol")


def api_token(admin: TestClient, name: str, role: str = "agent") -> str:
    answer = admin.post("/api/tokens", json={"name": name, "role": role},
                        headers={"X-CSRF-Token": session_csrf(admin)})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


class ConsoleProcess:
    """`kubeguard console` as a real process on a loopback port (started, killed -9, restarted)."""

    def __init__(self, db: str, cert: Path, key: Path, port: int, work: Path, extra: tuple[str, ...] = ()) -> None:
        self.db, self.cert, self.key, self.port, self.work, self.extra = db, cert, key, port, work, extra
        self.url = f"https://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        self.starts += 1
        log = open(self.work / f"console-{self.starts}.log", "wb")  # noqa: SIM115 (kept open by the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeguard", "console", "--db", self.db, "--port", str(self.port),
             "--tls-cert", str(self.cert), "--tls-key", str(self.key), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        context = ssl.create_default_context(cafile=str(self.cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited: {(self.work / f'console-{self.starts}.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", context=context, timeout=5) as answer:
                    if answer.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("console did not answer /healthz")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
