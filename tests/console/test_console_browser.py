"""The console in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

First-run setup with TOTP enrolment, the alert list and its filters, an alert's detail, a policy-mode switch
that an agent's poll then reads, logout, login with password + code. Screenshots of the main pages go to
the test's directory, and also to $KUBEGUARD_SCREENSHOTS when set (that is how docs/console/ is made).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import time
import urllib.request
import uuid
from pathlib import Path

from tests.conftest import require
from tests.console.conftest import free_port
from tests.console.consolelab import ADMIN_PASSWORD, SETUP_TOKEN, Codes, ConsoleProcess
from tests.console.test_console_maps import flow_records, tesla_paths

from kubeguard.agent.shipper import ConsoleOutput, tls_context
from kubeguard.agent.spool import Spool
from kubeguard.console.auth import AuthStore
from kubeguard.store.sqldb import Database

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--ignore-certificate-errors",
         "--window-size=1280,900")


def sample_alerts() -> list[dict]:
    rows = [("shop", "web-7d4b9c6f8d-x2x9z", "Terminal shell in container", "Notice", "bash"),
            ("shop", "web-7d4b9c6f8d-x2x9z", "Read sensitive file untrusted", "Warning", "cat"),
            ("shop", "cart-5c9f8b7d6e-k2p9q", "Launch package management process in container", "Error", "apt"),
            ("pay", "api-6b8d9c7f5a-m3n4o", "Outbound connection to C2 server", "Critical", "xmrig"),
            ("pay", "db-0", "Drop and execute new binary in container", "Critical", "sh"),
            ("kube-system", "coredns-5d78c9869d-abcde", "Contact K8S API server from container", "Notice", "curl")]
    out = []
    for i in range(36):
        ns, pod, rule, priority, proc = rows[i % len(rows)]
        out.append({"uuid": uuid.uuid4().hex, "rule": rule, "priority": priority,
                    "time": f"2026-12-04T{10 + i // 12:02d}:{(i * 5) % 60:02d}:00.000000000Z", "source": "syscall",
                    "output": f"{rule} (user=root proc={proc} ns={ns} pod={pod})", "tags": ["container", "T1059"],
                    "output_fields": {"k8s.ns.name": ns, "k8s.pod.name": pod, "proc.name": proc,
                                      "proc.cmdline": f"{proc} -c id", "user.name": "root",
                                      "container.image": f"registry.example/{ns}/{pod.split('-')[0]}:1.4"}})
    return out


def post(url: str, token: str, cert: Path, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(cert)), timeout=30) as r:
        return json.loads(r.read())


def test_console_in_chromium(tmp_path, tls_pair) -> None:
    require(CHROMIUM is not None and CHROMEDRIVER is not None, "chromium and chromium-driver (Debian packages)")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    cert, key = tls_pair
    db = str(tmp_path / "console.db")
    token_file = tmp_path / "setup-token"
    token_file.write_text(SETUP_TOKEN)
    agent_token = AuthStore(Database(db)).create_api_token("node-a", "agent")
    console = ConsoleProcess(db, cert, key, free_port(), tmp_path, ("--setup-token-file", str(token_file)))
    console.start()
    shots = [tmp_path / "shots"]
    if os.environ.get("KUBEGUARD_SCREENSHOTS"):
        shots.append(Path(os.environ["KUBEGUARD_SCREENSHOTS"]))
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(120)
    agent = None

    def shot(name: str) -> None:
        for d in shots:
            browser.save_screenshot(str(d / f"{name}.png"))

    def submit(element_id: str, css: bool = False) -> None:
        """Click a button that loads a new page and wait until the new page is there."""
        page = browser.find_element(By.TAG_NAME, "html")
        browser.find_element(By.CSS_SELECTOR if css else By.ID, element_id).click()

        def old_page_gone(_: object) -> bool:
            try:
                return bool(staleness_of(page)(None))
            except WebDriverException as exc:  # chromedriver's word for a node of a document that was replaced
                if "does not belong to the document" in str(exc):
                    return True
                raise

        WebDriverWait(browser, 60).until(old_page_gone)
        WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.readyState") == "complete")

    def fill(**fields: str) -> None:
        for name, value in fields.items():
            element = browser.find_element(By.ID, name)
            element.clear()
            element.send_keys(value)

    try:
        post(console.url, agent_token, cert, "/api/agent/batch", {
            "alerts": sample_alerts(),
            "heartbeat": {"version": "0.1.0", "events_per_s": 1840.5, "drops": 0, "alerts_sent": 36}})
        post(console.url, agent_token, cert, "/api/agent/findings", {"scan": "cluster scan 2026-12-04", "findings": [
            {"id": "f1", "check": "KG-WL-PRIV", "title": "Privileged container", "severity": "CRITICAL",
             "resource": {"kind": "Deployment", "namespace": "pay", "name": "api"},
             "remediation": "Set securityContext.privileged: false"},
            {"id": "f2", "check": "KG-RBAC-SECRETS", "title": "Service account can read all secrets",
             "severity": "HIGH", "resource": {"kind": "ClusterRoleBinding", "namespace": "", "name": "shop-reader"},
             "remediation": "Bind a Role limited to the secrets the workload needs"}]})
        post(console.url, agent_token, cert, "/api/agent/paths", {"scan": "tesla lab", "document": tesla_paths()})
        (tmp_path / "flows").mkdir()
        post(console.url, agent_token, cert, "/api/agent/flows", {"flows": flow_records(tmp_path / "flows")})

        # first run: every page leads to the setup form
        browser.get(console.url + "/alerts")
        assert browser.current_url.endswith("/setup")
        fill(token=SETUP_TOKEN, name="alice", password=ADMIN_PASSWORD, password2=ADMIN_PASSWORD)
        shot("setup")
        submit("next")
        assert browser.current_url.endswith("/enrol/totp")
        assert browser.find_element(By.CSS_SELECTOR, ".qr svg").is_displayed()
        shot("totp-enrolment")
        codes = Codes(browser.find_element(By.ID, "secret").text)
        fill(code=codes.next())
        submit("confirm")
        assert browser.current_url.endswith("/alerts")

        # alert list, chart and filters
        rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
        assert len(rows) == 36 and browser.find_element(By.ID, "total").text == "36"
        assert browser.find_elements(By.CSS_SELECTOR, ".chart svg rect")
        shot("alerts")
        Select(browser.find_element(By.ID, "f-namespace")).select_by_value("pay")
        Select(browser.find_element(By.ID, "f-priority")).select_by_value("Critical")
        submit("apply")
        rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
        assert len(rows) == 12 and all("pay" in r.text and "Critical" in r.text for r in rows)
        shot("alerts-filtered")
        page = browser.find_element(By.TAG_NAME, "html")
        rows[0].find_element(By.TAG_NAME, "a").click()
        WebDriverWait(browser, 60).until(staleness_of(page))
        fields = browser.find_element(By.ID, "fields").text
        assert "proc.cmdline" in fields and "container.image" in fields
        shot("alert-detail")
        submit("quarantine")  # the alert's pod, from its detail page
        assert browser.current_url.endswith("/workloads")
        quarantined = browser.find_element(By.ID, "quarantines").text
        assert "pay" in quarantined and ("api-" in quarantined or "db-0" in quarantined)

        # policy mode switch, read by an agent's poll
        agent = ConsoleOutput(console.url, agent_token, Spool(tmp_path / "spool.db"), tls_context(cert),
                              heartbeat=0.5, poll=0.5)
        browser.get(console.url + "/workloads")
        assert browser.find_element(By.ID, "mode-shop-web").text == "discover"
        submit("set-shop-web-protect")
        assert browser.find_element(By.ID, "mode-shop-web").text == "protect"
        shot("workloads")
        submit("#quarantines button", css=True)
        assert "No pod is quarantined" in browser.find_element(By.ID, "quarantines").text
        deadline = time.monotonic() + 60
        while agent.mode_of("shop", "web") != "protect" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.mode_of("shop", "web") == "protect" and agent.mode_of("pay", "api") == "discover"

        for page, name, text in (("/agents", "agents", "node-a"), ("/findings", "findings", "Privileged container")):
            browser.get(console.url + page)
            assert text in browser.find_element(By.TAG_NAME, "main").text
            shot(name)
        browser.get(console.url + "/paths")
        graph = browser.find_element(By.CSS_SELECTOR, "#attack-graph svg")
        assert graph.is_displayed() and graph.size["width"] > 400
        assert len(browser.find_elements(By.CSS_SELECTOR, "#attack-graph g.node")) >= 5
        assert "Internet" in browser.find_element(By.ID, "questions").text
        shot("attack-paths")
        browser.get(console.url + "/flows")
        flow_map = browser.find_element(By.CSS_SELECTOR, "#flow-map svg")
        assert flow_map.is_displayed() and len(flow_map.find_elements(By.TAG_NAME, "rect")) == 8
        assert "http/tcp:8080" in browser.find_element(By.ID, "edges").text
        shot("flow-map")
        browser.get(console.url + "/admin")
        audit = browser.find_element(By.ID, "audit").text
        assert "policy.mode" in audit and "quarantine.release" in audit and "enrol" in audit
        shot("admin")

        # logout, then a login with password + a fresh code
        submit("logout")
        assert browser.current_url.endswith("/login")
        browser.get(console.url + "/alerts")
        assert browser.current_url.endswith("/login")
        fill(name="alice", password=ADMIN_PASSWORD, code="000000")
        submit("login")
        assert "wrong" in browser.find_element(By.ID, "error").text
        fill(name="alice", password=ADMIN_PASSWORD, code=codes.next())
        shot("login")
        submit("login")
        assert browser.current_url.endswith("/alerts")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")) == 36
        submit("logout")
        assert browser.current_url.endswith("/login")
    finally:
        if agent is not None:
            agent.close(drain=1.0)
        browser.quit()
        console.stop()
