"""`-o html` opens in headless Chromium without console errors, draws the SVG and highlights a path.

Driven over the DevTools protocol (websocket-client, a dependency of the kubernetes client): the
page is loaded after Runtime and Log are enabled, so every exception and console error is seen.
Skips outside CI when chromium is missing; fails under CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import require

from kubeguard.cluster.loader import load_path
from kubeguard.posture.paths.commands import analyse
from kubeguard.posture.paths.html import page

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "paths"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal DevTools protocol client over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout}s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    require(CHROMIUM is not None, "chromium (apt-get install chromium)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0", "--remote-allow-origins=*",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert proc.poll() is None, "chromium exited"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page_target = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page_target["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_html_page_renders_without_console_errors(browser, tmp_path):
    graph, answers = analyse(load_path(FIXTURES / "overlap.yaml"))
    html_file = tmp_path / "paths.html"
    html_file.write_text(page(graph, answers))

    browser.call("Runtime.enable")
    browser.call("Log.enable")
    browser.call("Page.enable")
    browser.call("Page.navigate", url=html_file.as_uri())
    browser.wait_for("Page.loadEventFired")

    drawn = browser.evaluate("document.querySelectorAll('svg g.node').length")
    steps = browser.evaluate("document.querySelectorAll('svg path.step').length")
    assert drawn >= 6 and steps >= 5
    assert browser.evaluate("document.title").startswith("kubeguard attack paths (4 question")
    # choosing the first path dims the steps of the others
    browser.evaluate("document.querySelector('#paths li').click()")
    dimmed = browser.evaluate("document.querySelectorAll('svg path.step.dim').length")
    assert 0 < dimmed < steps
    browser.call("Runtime.evaluate", expression="1")  # drain events emitted so far

    errors = [e for e in browser.events
              if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
