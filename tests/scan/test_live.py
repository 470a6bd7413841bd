"""Live scan with the real `kubernetes` client against a replay API server over HTTPS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeguard.cliutil import UserError
from kubeguard.cluster.live import load_live
from kubeguard.posture.check_runner import run_checks
from replay import ReplayServer

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "replay" / "tesla-cluster.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReplayServer]:
    with ReplayServer(json.loads(RECORDED.read_text()), tmp_path) as replay:
        yield replay


def test_live_snapshot_is_read_only_paged_and_complete(server: ReplayServer, tmp_path: Path) -> None:
    snap = load_live(server.kubeconfig(tmp_path / "config"), "replay")
    assert snap.cluster == "replay"
    assert all(method == "GET" for method, _ in server.requests)
    kinds = sorted({o.kind for o in snap.objects})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace", "Node", "Pod", "ReplicaSet",
                     "Service", "ServiceAccount"]
    # both pages of pods, kind/apiVersion filled in from the list
    assert sorted(o.name for o in snap.of_kind("Pod")) == ["kube-apiserver-cp-1", "kubernetes-dashboard-5b7c9-x2k4q"]
    assert all(o.api_version == "v1" for o in snap.of_kind("Pod"))
    assert any("continue=page-2" in path for _, path in server.requests)
    # the forbidden endpoint is one problem naming it; the rest was read
    assert [str(p) for p in snap.problems] == [f"{server.url}/api/v1/secrets: HTTP 403 Forbidden"]
    components = {(c.component, c.node): c for c in snap.components}
    assert components["kube-apiserver", "cp-1"].flags["authorization-mode"] == "Node,RBAC"
    assert components["kubelet", "cp-1"].flags["anonymous-auth"] == "true"  # from /configz


def test_live_findings_show_the_tesla_chain(server: ReplayServer, tmp_path: Path) -> None:
    findings = run_checks(load_live(server.kubeconfig(tmp_path / "config"), "replay"))
    got = {(f.check, str(f.resource)) for f in findings}
    assert {
        ("unauthenticated-console", "Deployment/kubernetes-dashboard/kubernetes-dashboard"),
        ("rbac-cluster-admin", "ServiceAccount/kubernetes-dashboard/kubernetes-dashboard"),
        ("exposed-service", "Service/kubernetes-dashboard/kubernetes-dashboard"),
        ("kubelet-anonymous-auth", "kubelet/cp-1"),
        ("kubelet-read-only-port", "kubelet/cp-1"),
        ("apiserver-anonymous-auth", "kube-apiserver/cp-1"),
        ("apiserver-no-audit", "kube-apiserver/cp-1"),
    } <= got
    # the dashboard's ReplicaSet and pod are reported once, through the Deployment
    assert not any(r.startswith(("ReplicaSet/", "Pod/kubernetes-dashboard/")) for _, r in got)
    endpoint = next(f for f in findings if f.check == "exposed-service")
    assert endpoint.file == f"{server.url}/api/v1/services" and endpoint.line is None


def test_cli_live_scan_and_wrong_token(server: ReplayServer, tmp_path: Path) -> None:
    config = server.kubeconfig(tmp_path / "config")
    result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", "--kubeconfig", str(config), "--context",
                             "replay", "-o", "json", "--fail-on", "critical"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert "unauthenticated-console" in {f["check"] for f in data["findings"]}
    assert result.stderr.strip() == f"kubeguard: warning: not read: {server.url}/api/v1/secrets: HTTP 403 Forbidden"
    bad = server.kubeconfig(tmp_path / "bad", token="wrong")
    snap = load_live(bad, None)
    assert snap.objects == []
    assert [str(p) for p in snap.problems] == [
        f"{server.url}/api/v1/namespaces: HTTP 401 Unauthorized: the API server refused the credentials"]


def test_unusable_kubeconfigs_are_one_line(server: ReplayServer, tmp_path: Path) -> None:
    config = server.kubeconfig(tmp_path / "config")
    with pytest.raises(UserError, match=r"^kubeconfig .*config: .*context"):
        load_live(config, "no-such-context")
    (tmp_path / "broken").write_text("clusters: [unclosed\n")
    with pytest.raises(UserError, match=r"^kubeconfig .*broken:1: malformed YAML"):
        load_live(tmp_path / "broken", None)
    with pytest.raises(UserError, match=r"^kubeconfig .*missing: no such file"):
        load_live(tmp_path / "missing", None)
    result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", "--kubeconfig", str(tmp_path / "broken")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unreachable_server_is_one_problem(tmp_path: Path) -> None:
    with ReplayServer({}, tmp_path) as replay:
        config = replay.kubeconfig(tmp_path / "config")
    snap = load_live(config, None)  # the server is gone now
    assert len(snap.problems) == 1
    assert snap.problems[0].message.startswith("cannot reach the API server")


def test_live_sarif_is_valid_without_file_locations(server: ReplayServer, tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads((RECORDED.parents[2] / "sarif-schema-2.1.0.json").read_text())
    result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", "--kubeconfig",
                             str(server.kubeconfig(tmp_path / "config")), "-o", "sarif"],
                            capture_output=True, text=True, timeout=120)
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    assert results and all("physicalLocation" not in r["locations"][0] for r in results)


def test_no_kubeconfig_outside_a_cluster_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UserError, match=r"^no kubeconfig \(.*\.kube/config does not exist\) and not running inside"):
        load_live()
