"""The console's JSON API and pages: ingest with stable ids, filters, timeline, modes, findings, agents."""

from __future__ import annotations

import subprocess
import sys
import uuid

from tests.console.consolelab import admin_client, api_token, client, new_app, session_csrf

from kubeguard.store.central import workload_name


def alert(rule: str = "Terminal shell in container", ns: str = "shop", pod: str = "web-7d4b9c6f8d-x2x9z",
          priority: str = "Warning", time: str = "2026-12-04T15:00:00.000000000Z", **fields: object) -> dict:
    return {"uuid": uuid.uuid4().hex, "rule": rule, "priority": priority, "time": time, "source": "syscall",
            "output": f"{rule} (pod={pod})", "tags": ["container", "T1059"],
            "output_fields": {"k8s.ns.name": ns, "k8s.pod.name": pod, "proc.name": "bash", **fields}}


def test_batches_store_each_alert_once_and_the_node_is_the_tokens(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    batch = [alert(), alert(rule="Read sensitive file untrusted", priority="Error", ns="pay", pod="db-0")]
    first = agent.post("/api/agent/batch", json={"alerts": batch, "heartbeat": {"version": "0.1.0",
                                                                               "events_per_s": 812.5, "drops": 3}})
    assert first.json() == {"stored": 2, "duplicates": 0}
    again = agent.post("/api/agent/batch", json={"alerts": [*batch, alert()]})
    assert again.json() == {"stored": 1, "duplicates": 2}
    stored = admin.get("/api/alerts").json()
    assert stored["total"] == 3 and {a["node"] for a in stored["alerts"]} == {"node-a"}
    one = admin.get(f"/api/alerts/{batch[1]['uuid']}").json()
    assert one["workload"] == "db" and one["output_fields"]["proc.name"] == "bash" and one["priority"] == "Error"
    assert admin.get("/api/alerts/nope").status_code == 404
    (health,) = admin.get("/api/agents").json()["agents"]
    assert health["node"] == "node-a" and health["events_per_s"] == 812.5 and health["drops"] == 3
    assert agent.post("/api/agent/batch", json={"alerts": [{**alert(), "priority": "Loud"}]}).status_code == 422
    assert agent.post("/api/agent/batch", json={"alerts": [{"rule": "x"}]}).status_code == 422


def test_filters_timeline_and_pages(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-b')}"
    alerts = [alert(time=f"2026-12-04T1{h}:0{m}:00.000000000Z") for h in range(3) for m in range(2)]
    alerts.append(alert(rule="Outbound connection to C2 server", ns="pay", pod="api-5f6c7d8e9a-abcde",
                        priority="Critical", time="2026-12-04T12:30:00.000000000Z"))
    assert agent.post("/api/agent/batch", json={"alerts": alerts}).json()["stored"] == 7
    get = lambda **q: admin.get("/api/alerts", params=q).json()["total"]  # noqa: E731
    assert get(namespace="pay") == 1 and get(workload="web") == 6 and get(priority="Critical") == 1
    assert get(rule="Terminal shell in container", since="2026-12-04T11") == 4
    assert get(since="2026-12-04T11", until="2026-12-04T12") == 2 and get(node="node-b") == 7 and get(node="x") == 0
    buckets = admin.get("/api/timeline").json()["buckets"]
    assert [b["count"] for b in buckets] == [2, 2, 3] and buckets[0]["time"] == "2026-12-04T10"
    page = admin.get("/alerts", params={"namespace": "pay"}).text
    assert "Outbound connection to C2 server" in page and "Terminal shell" not in page.split("<tbody>")[1]
    assert "<svg" in page and "<rect" in page
    detail = admin.get(f"/alerts/{alerts[-1]['uuid']}").text
    assert "proc.name" in detail and "T1059" in detail
    for path in ("/workloads", "/agents", "/findings", "/admin"):
        assert admin.get(path).status_code == 200


def test_mode_switch_is_stored_audited_and_served_to_agents(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    agent.post("/api/agent/batch", json={"alerts": [alert()]})
    assert admin.get("/api/workloads").json()["workloads"][0]["mode"] == "discover"
    answer = admin.post("/workloads/mode", data={"csrf": session_csrf(admin), "namespace": "shop",
                                                "workload": "web", "mode": "protect"}, follow_redirects=False)
    assert answer.status_code == 303
    bad = admin.put("/api/workloads/shop/web/mode", json={"mode": "block-all"},
                    headers={"X-CSRF-Token": session_csrf(admin)})
    assert bad.status_code == 422
    modes = agent.get("/api/agent/modes").json()
    assert modes["default"] == "discover"
    assert [(m["namespace"], m["workload"], m["mode"]) for m in modes["modes"]] == [("shop", "web", "protect")]
    audit = admin.get("/api/audit").json()["audit"]
    assert any(e["action"] == "policy.mode" and e["target"] == "shop/web" and e["detail"] == "protect"
               and e["actor"] == "alice" for e in audit)
    assert 'id="mode-shop-web">protect' in admin.get("/workloads").text


def test_findings_upload_and_page(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'scanner')}"
    finding = {"id": "f1", "check": "KG-WL-001", "title": "Privileged container", "severity": "critical",
               "resource": {"kind": "Deployment", "namespace": "shop", "name": "web"}, "remediation": "drop it"}
    assert agent.post("/api/agent/findings", json={"scan": "scan-1", "findings": [finding]}).json() == {"stored": 1}
    assert admin.get("/api/findings").json()["findings"][0]["check"] == "KG-WL-001"
    assert "Privileged container" in admin.get("/findings").text


def test_openapi_is_published_behind_auth(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    assert client(app).get("/api/openapi.json").status_code == 401
    spec = admin.get("/api/openapi.json").json()
    assert "/api/agent/batch" in spec["paths"] and "/api/alerts" in spec["paths"]
    assert "/login" not in spec["paths"]


def test_workload_name_from_pod_names() -> None:
    assert workload_name({"k8s.pod.name": "web-7d4b9c6f8d-x2x9z"}) == "web"
    assert workload_name({"k8s.pod.name": "db-0"}) == "db"
    assert workload_name({"k8s.pod.name": "agent-x7k2p"}) == "agent"
    assert workload_name({"k8s.deployment.name": "api", "k8s.pod.name": "whatever"}) == "api"
    assert workload_name({}) == ""


def test_console_cli_bad_input_is_one_line(tmp_path) -> None:
    run = subprocess.run([sys.executable, "-m", "kubeguard", "console", "--db", str(tmp_path / "c.db"),
                          "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k.pem")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "missing.pem" in run.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    run = subprocess.run([sys.executable, "-m", "kubeguard", "console", "--db", str(tmp_path / "c.db"),
                          "--tls-cert", str(junk), "--tls-key", str(junk)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "do not load" in run.stderr and "Traceback" not in run.stderr


def test_quarantine_is_requested_audited_served_to_agents_and_released(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    record = alert()
    agent.post("/api/agent/batch", json={"alerts": [record]})
    page = admin.get(f"/alerts/{record['uuid']}").text
    assert 'id="quarantine"' in page
    answer = admin.post("/pods/quarantine", data={"csrf": session_csrf(admin), "namespace": "shop",
                                                  "pod": "web-7d4b9c6f8d-x2x9z", "freeze": "1"},
                        follow_redirects=False)
    assert answer.status_code == 303
    (wanted,) = agent.get("/api/agent/modes").json()["quarantines"]
    assert (wanted["namespace"], wanted["pod"], wanted["freeze"]) == ("shop", "web-7d4b9c6f8d-x2x9z", True)
    assert "web-7d4b9c6f8d-x2x9z" in admin.get("/workloads").text
    released = admin.delete("/api/pods/shop/web-7d4b9c6f8d-x2x9z/quarantine",
                            headers={"X-CSRF-Token": session_csrf(admin)})
    assert released.json()["released"] is True
    assert agent.get("/api/agent/modes").json()["quarantines"] == []
    actions = [(e["action"], e["target"]) for e in admin.get("/api/audit").json()["audit"]]
    assert ("quarantine", "shop/web-7d4b9c6f8d-x2x9z") in actions
    assert ("quarantine.release", "shop/web-7d4b9c6f8d-x2x9z") in actions
