"""The kubelet and API server pod sources against a real HTTPS server (self-signed cert, bearer token)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from kubeguard.agent.podsource import ApiPodSource, KubeletPodSource
from replay import ReplayServer


def pod(name: str, container_id: str, node: str = "node-a") -> dict[str, Any]:
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": {"app": name}},
        "spec": {"nodeName": node, "serviceAccountName": "web",
                 "containers": [{"name": "main", "image": "nginx:1.27"}]},
        "status": {"podIP": "10.244.1.7", "containerStatuses": [
            {"name": "main", "image": "nginx:1.27", "containerID": f"containerd://{container_id}"}]},
    }


def pods_answer(*pods: dict[str, Any]) -> dict[str, Any]:
    return {"status": 200, "body": {"kind": "PodList", "apiVersion": "v1", "items": list(pods)}}


def kubelet_source(server: ReplayServer, tmp_path: Path, token: str | None = None) -> KubeletPodSource:
    token_file = tmp_path / "token"
    token_file.write_text((token or server.token) + "\n")
    return KubeletPodSource(url=f"{server.url}/pods", token_file=token_file, ca_file=server.cert, min_refresh=0.0)


def test_kubelet_source_resolves_refreshes_and_keeps_the_last_good_map(tmp_path: Path) -> None:
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    with ReplayServer({"/pods": pods_answer(pod("web", first))}, tmp_path) as server:
        source = kubelet_source(server, tmp_path)
        found = source.workload(first)
        assert found is not None
        assert (found.namespace, found.pod, found.container, found.service_account, found.image) == (
            "shop", "web", "main", "web", "nginx:1.27")
        assert source.workload(second) is None
        server.responses["/pods"] = pods_answer(pod("web", first), pod("api", second))  # a pod starts
        found = source.workload(second)  # a miss refreshes
        assert found is not None and found.pod == "api"
        server.responses["/pods"] = {"status": 200, "body": "not a pod list"}
        assert source.refresh(force=True) is False
        assert source.last_error == f"kubelet {server.url}/pods: answer is not a list of pods"
        assert source.workload(second) is not None  # the last good map is kept
        server.responses["/pods"] = {"status": 500, "body": {"kind": "Status"}}
        assert source.refresh(force=True) is False and source.last_error.endswith("HTTP 500")
        assert source.errors == 2
        assert all(path == "/pods" for _, path in server.requests)


def test_kubelet_source_without_the_right_token_or_certificate_is_one_error_line(tmp_path: Path) -> None:
    with ReplayServer({"/pods": pods_answer(pod("web", secrets.token_hex(32)))}, tmp_path) as server:
        wrong = kubelet_source(server, tmp_path, token="not-the-token")
        assert wrong.refresh(force=True) is False
        assert wrong.last_error == f"kubelet {server.url}/pods: HTTP 401"
        other_ca = tmp_path / "other"
        other_ca.mkdir()
        untrusted = kubelet_source(server, tmp_path)
        untrusted.ca_file = ReplayServer({}, other_ca).cert  # a CA that did not sign the server's certificate
        assert untrusted.refresh(force=True) is False
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.last_error and "\n" not in untrusted.last_error


def test_api_source_lists_this_nodes_pods_through_the_real_client(tmp_path: Path) -> None:
    container = secrets.token_hex(32)
    with ReplayServer({"/api/v1/pods": pods_answer(pod("web", container))}, tmp_path) as server:
        source = ApiPodSource("node-a", kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")), min_refresh=0.0)
        found = source.workload(container)
        assert found is not None and (found.pod, found.node) == ("web", "node-a")
        assert any("fieldSelector=spec.nodeName%3Dnode-a" in path for _, path in server.requests)
        bad = ApiPodSource("node-a", kubeconfig=str(server.kubeconfig(tmp_path / "bad", token="wrong")))
        assert bad.refresh(force=True) is False
        assert bad.last_error == "API server: cannot list pods: Unauthorized"
