"""The attack-path graph and flow-map pages: real `kubeguard paths -o json` and `kubeguard dpi --flows-out` output
uploaded by an agent token, drawn as SVG for a viewer, refused without credentials and when malformed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.console.consolelab import add_viewer, admin_client, api_token, client, new_app
from tests.net.flowlab import write_lab

from kubeguard.posture.paths.render import PathsDocumentError, from_json

REPO = Path(__file__).resolve().parents[2]
NEW_ROUTES = ("/paths", "/flows", "/api/paths", "/api/flowmap")


def tesla_paths() -> dict:
    done = subprocess.run([sys.executable, "-m", "kubeguard", "paths", str(REPO / "examples" / "tesla"), "-o", "json"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 1, done.stderr  # 1: at least one path
    return json.loads(done.stdout)


def flow_records(tmp_path: Path) -> list[dict]:
    _pods, records = write_lab(tmp_path)
    return [json.loads(line) for line in records.read_text().splitlines() if line.strip()]


def test_new_routes_refuse_anonymous_callers_and_uploads_need_an_agent_token(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    anon = client(app)
    for path in NEW_ROUTES:
        answer = anon.get(path, follow_redirects=False)
        if path.startswith("/api/"):
            assert answer.status_code == 401, path
        else:
            assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    for path in ("/api/agent/paths", "/api/agent/flows"):
        assert anon.post(path, json={}).status_code == 401
        viewer_token = client(app)
        viewer_token.headers["Authorization"] = f"Bearer {api_token(admin, 'script', role='viewer')}"
        assert viewer_token.post(path, json={}).status_code == 403, path
    viewer, _ = add_viewer(admin, app)
    for path in NEW_ROUTES:
        assert viewer.get(path).status_code == 200, path
    assert viewer.post("/api/agent/flows", json={"flows": []}).status_code == 403  # sessions do not upload


def test_attack_paths_page_draws_the_uploaded_paths(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    viewer, _ = add_viewer(admin, app)
    empty = viewer.get("/paths").text
    assert "No attack paths uploaded yet" in empty and "<svg" not in empty
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    document = tesla_paths()
    answer = agent.post("/api/agent/paths", json={"scan": "tesla lab", "document": document})
    assert answer.status_code == 200, answer.text
    expected_paths = sum(len(a["paths"]) for a in document["answers"])
    assert answer.json() == {"answers": len(document["answers"]), "paths": expected_paths} and expected_paths > 0
    assert viewer.get("/api/paths").json()["document"] == document
    page = viewer.get("/paths").text
    drawing = page.split('id="attack-graph">', 1)[1].split("</svg>", 1)[0]
    labels = {n["label"] for a in document["answers"] for p in a["paths"] for n in p["nodes"]}
    drawn = {m for m in re.findall(r"<title>([^<]*)</title></g>", drawing)}
    assert {html_unescape(t) for t in drawn} == labels  # every node of every path is drawn, nothing else
    steps = {(s["from"], s["to"]) for a in document["answers"] for p in a["paths"] for s in p["steps"]}
    assert drawing.count('class="step') == len(steps)
    assert page.count("(cost ") == expected_paths
    first_fix = next(a["minimal_fix"][0]["finding"] for a in document["answers"] if a["minimal_fix"])
    assert first_fix in page  # choke points / smallest fix listed
    assert "Service kubernetes-dashboard/kubernetes-dashboard" in page


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


@pytest.mark.parametrize(("document", "message"), [
    ({"kind": "Something"}, "not a `kubeguard paths -o json` document"),
    ({"kind": "KubeguardAttackPaths", "answers": [{"from": "internet", "to": "x", "paths": [
        {"cost": 1, "nodes": [{"id": "a", "label": "A", "kind": "pod"}, {"id": "b", "label": "B", "kind": "pod"}],
         "steps": [{"from": "a", "to": "b", "kind": "teleports-to", "evidence": "", "findings": []}]}]}]},
     "answers[0].paths[0]: missing 'teleports-to'"),
    ({"kind": "KubeguardAttackPaths", "answers": [{"from": "internet", "to": "x", "paths": [
        {"cost": 1, "nodes": [{"id": "a", "label": "A", "kind": "pod"}],
         "steps": [{"from": "a", "to": "zz", "kind": "exposes", "evidence": "", "findings": []}]}]}]},
     "names a node not on the path"),
    ({"kind": "KubeguardAttackPaths", "answers": [{"from": "internet", "paths": "many"}]}, "answers[0]"),
])
def test_a_malformed_paths_document_is_refused_with_where(tmp_path: Path, document: dict, message: str) -> None:
    with pytest.raises(PathsDocumentError, match=re.escape(message)):
        from_json(document)
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    answer = agent.post("/api/agent/paths", json={"scan": "bad", "document": document})
    assert answer.status_code == 422 and message in answer.json()["detail"]
    assert admin.get("/api/paths").json()["document"] is None  # nothing stored


def test_flow_map_page_draws_who_talks_to_whom(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    viewer, _ = add_viewer(admin, app)
    assert "No flows uploaded yet" in viewer.get("/flows").text
    records = flow_records(tmp_path)
    agent = client(app)
    agent.headers["Authorization"] = f"Bearer {api_token(admin, 'node-a')}"
    half = len(records) // 2
    assert agent.post("/api/agent/flows", json={"flows": records[:half]}).json() == {"stored": half, "duplicates": 0}
    assert agent.post("/api/agent/flows", json={"flows": records[half:]}).json() == {"stored": len(records) - half,
                                                                                           "duplicates": 0}
    fmap = viewer.get("/api/flowmap").json()
    edges = {(e["from"], e["to"]): e for e in fmap["edges"]}
    web_api = [e for (a, b), e in edges.items() if a.startswith("shop/Pod/web-") and b.startswith("shop/Pod/api")]
    assert sum(e["flows"] for e in web_api) == 2 and all(e["protocols"] == {"http/tcp:8080": 1} for e in web_api)
    assert sum(e["flows"] for e in fmap["edges"]) == len(records)
    assert "203.0.113.7" in {n["id"] for n in fmap["nodes"]}
    page = viewer.get("/flows").text
    drawing = page.split('id="flow-map">', 1)[1].split("</svg>", 1)[0]
    assert drawing.count("<rect") == len(fmap["nodes"]) and drawing.count("marker-end=") == len(fmap["edges"])
    assert page.split('id="edges"', 1)[1].count("<tr") == len(fmap["edges"]) + 1  # header + one row per edge
    bad = agent.post("/api/agent/flows", json={"flows": [records[0], {"fd.cip": "10.0.0.1"}]})
    assert bad.status_code == 422 and "flow record 2" in bad.json()["detail"]
    assert sum(e["flows"] for e in viewer.get("/api/flowmap").json()["edges"]) == len(records)  # batch refused whole
    infinite = agent.post("/api/agent/flows", content=b'{"flows": [{"fd.cip": "10.0.0.1", "fd.sip": "10.0.0.2",'
                                                      b' "fd.sport": Infinity}]}',
                          headers={"Content-Type": "application/json"})
    assert infinite.status_code == 422 and "flow record 1" in infinite.json()["detail"]
