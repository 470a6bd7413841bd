"""`kubeguard netpol check --kubeconfig`: the live path, the real `kubernetes` client against a replay server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeguard.cluster.live import ENDPOINTS
from kubeguard.cluster.loader import load_path
from replay import ReplayServer

SHOP = Path(__file__).resolve().parents[1] / "fixtures" / "netpol" / "shop.yaml"


def responses() -> dict[str, dict[str, object]]:
    objects = load_path(SHOP).objects
    out: dict[str, dict[str, object]] = {}
    for endpoint in ENDPOINTS:
        items = [o.raw for o in objects if o.kind == endpoint.kind]
        body = {"apiVersion": endpoint.api_version, "kind": f"{endpoint.kind}List",
                "metadata": {"resourceVersion": "1"}, "items": items}
        out[endpoint.path] = {"status": 200, "body": body}
    return out


def test_check_reads_the_live_cluster(tmp_path: Path) -> None:
    with ReplayServer(responses(), tmp_path) as server:
        config = server.kubeconfig(tmp_path / "config")
        base = [sys.executable, "-m", "kubeguard", "netpol", "check", "--kubeconfig", str(config), "-o", "json"]
        allowed = subprocess.run([*base, "--from", "shop/web", "--to", "db/postgres-0:pg"], capture_output=True,
                                 text=True, timeout=120)
        denied = subprocess.run([*base, "--from", "shop/web", "--to", "db/postgres-0:5433"], capture_output=True,
                                text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["deciding"] == ["db/postgres-from-shop"]
    assert denied.returncode == 1, denied.stderr
    assert json.loads(denied.stdout)["deciding"] == ["db/default-deny", "db/postgres-from-shop"]
    assert any(path.startswith("/apis/networking.k8s.io/v1/networkpolicies") for _, path in server.requests)
