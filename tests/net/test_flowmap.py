"""`kubeguard flows --map`: workloads as nodes, edges with protocols, bytes and verdict counts; json, dot, html."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.net.flowlab import write_lab


def flows(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeguard", "flows", *args], capture_output=True, text=True,
                          timeout=120)


def test_json_map_groups_pods_into_workloads(tmp_path: Path) -> None:
    pods, records = write_lab(tmp_path)
    done = flows("--map", str(records), "--pods", str(pods))
    assert done.returncode == 0, done.stderr
    fmap = json.loads(done.stdout)
    nodes = {n["id"]: n["kind"] for n in fmap["nodes"]}
    assert nodes["shop/Deployment/web"] == "workload" and nodes["db/StatefulSet/postgres"] == "workload"
    assert nodes["203.0.113.7"] == "external" and nodes["monitoring/Pod/prom"] == "workload"
    edges = {(e["from"], e["to"]): e for e in fmap["edges"]}
    web_api = edges[("shop/Deployment/web", "shop/Deployment/api")]
    assert web_api["flows"] == 2 and web_api["protocols"] == {"http/tcp:8080": 2}
    assert web_api["verdicts"] == {"pass": 2} and web_api["bytes"] > 0
    assert edges[("shop/Deployment/web", "kube-system/Deployment/coredns")]["protocols"] == {"dns/udp:53": 1}
    assert len(edges) == 7


def test_without_pods_map_nodes_are_the_pods_named_in_the_records(tmp_path: Path) -> None:
    _pods, records = write_lab(tmp_path)
    fmap = json.loads(flows("--map", str(records)).stdout)
    assert {"shop/Pod/web-7d4b9-abcde", "shop/Pod/web-7d4b9-fghij"} <= {n["id"] for n in fmap["nodes"]}


def test_dot_and_html(tmp_path: Path) -> None:
    pods, records = write_lab(tmp_path)
    dot = flows("--map", str(records), "--pods", str(pods), "-o", "dot")
    assert dot.returncode == 0 and '"shop/Deployment/web" -> "shop/Deployment/api"' in dot.stdout
    if shutil.which("dot"):
        assert subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True).returncode == 0
    page = tmp_path / "map.html"
    done = flows("--map", str(records), "--pods", str(pods), "-o", "html", "--out", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert text.count("<rect") == 7 and "http/tcp:8080" in text and "<svg" in text


def test_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"fd.cip": "10.0.0.1"}\n')
    done = flows("--map", str(bad))
    assert done.returncode == 2 and f"{bad}:1: not a flow record" in done.stderr and "Traceback" not in done.stderr
    assert "expected json, dot or html" in flows("--map", str(bad), "-o", "png").stderr
