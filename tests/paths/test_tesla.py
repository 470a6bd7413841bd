"""The Tesla chain on examples/tesla: internet -> dashboard without login -> cluster-admin -> the pod
with AWS keys -> cloud data, and -> compute hijack; closing the dashboard's exposure or its binding
closes the chain (asserted on modified copies of the snapshot)."""

from __future__ import annotations

from pathlib import Path

from kubeguard.cluster.loader import load_path
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.posture.check_runner import run_checks
from kubeguard.posture.paths.build import build_graph
from kubeguard.posture.paths.graph import CLOUD_DATA, CLUSTER_ADMIN, COMPUTE_HIJACK, INTERNET
from kubeguard.posture.paths.query import answer

TESLA = Path(__file__).resolve().parents[2] / "examples" / "tesla"
CONSOLE = "endpoint:kubernetes-dashboard/kubernetes-dashboard"
TELEMETRY = "pod:telemetry/telemetry-ingest"


def _tesla(drop: tuple[str, str] | None = None, cluster_ip: bool = False) -> Snapshot:
    snapshot = load_path(TESLA)
    if drop:
        snapshot = Snapshot([o for o in snapshot.objects if (o.kind, o.name) != drop], snapshot.components)
    if cluster_ip:
        service = snapshot.get("Service", "kubernetes-dashboard", "kubernetes-dashboard")
        assert service is not None
        service.raw["spec"]["type"] = "ClusterIP"
        service.raw["spec"]["ports"][0].pop("nodePort")
    return snapshot


def _chain(ans) -> list[list[str]]:
    return [p.nodes for p in ans.paths if CLUSTER_ADMIN in p.nodes]


def test_internet_to_cloud_data_through_the_dashboard_and_cluster_admin():
    snapshot = _tesla()
    graph = build_graph(snapshot, run_checks(snapshot))
    ans = answer(graph, INTERNET, CLOUD_DATA)
    best = ans.paths[0]
    kinds = [s.kind for s in best.steps]
    assert kinds[:2] == ["EXPOSED", "UNAUTH_CONSOLE"]
    assert best.nodes[1] == CONSOLE and CLUSTER_ADMIN in best.nodes and TELEMETRY in best.nodes
    assert kinds[-2:] == ["CLOUD_CREDS", "CLOUD_ACCESS"]
    assert best.nodes[-2].startswith("cloud:aws-key:AKIA****")
    # the steps are labelled with the scan's own findings, with file:line
    labels = {f for s in best.steps for f in s.findings}
    assert "exposed-service:Service/kubernetes-dashboard/kubernetes-dashboard" in labels
    assert any(f.startswith("unauthenticated-console:") for f in labels)
    assert any(f.startswith("secret-in-env:Deployment/telemetry/telemetry-ingest") for f in labels)
    assert all(graph.findings[f].file for f in labels)
    assert "exposed-service:Service/kubernetes-dashboard/kubernetes-dashboard" in ans.cut


def test_internet_to_compute_hijack():
    ans = answer(build_graph(_tesla()), INTERNET, COMPUTE_HIJACK)
    assert ans.paths and ans.paths[0].nodes[1] == CONSOLE
    assert ans.paths[0].steps[-1].kind == "RESOURCE_HIJACK"


def test_removing_the_dashboards_exposure_closes_every_internet_path():
    graph = build_graph(_tesla(cluster_ip=True))
    for target in (CLUSTER_ADMIN, CLOUD_DATA, COMPUTE_HIJACK):
        assert answer(graph, INTERNET, target).paths == []


def test_removing_the_dashboards_binding_closes_the_chain():
    graph = build_graph(_tesla(drop=("ClusterRoleBinding", "kubernetes-dashboard-admin")))
    assert answer(graph, INTERNET, CLUSTER_ADMIN).paths == []
    for target in (CLOUD_DATA, COMPUTE_HIJACK):
        ans = answer(graph, INTERNET, target, limit=50)
        assert _chain(ans) == [] and not any(TELEMETRY in p.nodes for p in ans.paths)
