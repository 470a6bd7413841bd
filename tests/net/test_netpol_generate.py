"""`kubeguard netpol generate`: policies from real `dpi --flows-out` records allow every observed flow and nothing
else on the evaluator, and validate against the Kubernetes OpenAPI schema (kubernetes-validate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml
from tests.net.flowlab import FLOWS, PODS, write_lab

from kubeguard.cluster.loader import load_paths
from kubeguard.net.netpol import NetpolEvaluator

K8S_VERSION = "1.32.0"


def generate(tmp_path: Path) -> tuple[Path, Path, Path]:
    pods, flows = write_lab(tmp_path)
    out = tmp_path / "policies"
    done = subprocess.run([sys.executable, "-m", "kubeguard", "netpol", "generate", str(flows), "--pods", str(pods),
                           "--out-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return pods, flows, out


def test_flow_records_name_both_pods(tmp_path: Path) -> None:
    _pods, flows = write_lab(tmp_path)
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    assert len(records) == len(FLOWS)
    web_to_api = next(r for r in records if r["fd.sport"] == 8080 and r["fd.cip"] == "10.0.1.1")
    assert web_to_api["net.client.pod"] == "shop/web-7d4b9-abcde"
    assert web_to_api["net.server.pod"] == "shop/api-5f6c8-klmno"


def test_generated_policies_allow_exactly_the_observed_flows(tmp_path: Path) -> None:
    pods, _flows, out = generate(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["db.yaml", "kube-system.yaml", "monitoring.yaml", "shop.yaml"]
    snap = load_paths([pods, out])
    ev = NetpolEvaluator(snap)
    assert ev.problems == [] and len(ev.policies) == 5  # web, api, postgres, coredns, prom
    by_ip = {ip: ev.by_ip(ip) for _ns, _name, ip, *_ in PODS}
    observed = set()
    for cip, sip, port, proto, _data in FLOWS:
        verdict = ev.evaluate(ev.by_ip(cip), ev.by_ip(sip), port, proto)
        assert verdict.allowed, f"{cip} -> {sip}:{port}/{proto}: {verdict.reason}"
        observed.add((cip, sip, port, proto))
    # the other replica of a workload is allowed what its workload was seen doing (policies select workloads)
    observed |= {("10.0.1.2", "10.0.1.10", 8080, "TCP"), ("10.0.1.2", "10.0.3.53", 53, "UDP"),
                 ("10.0.4.1", "10.0.1.1", 9090, "TCP"), ("198.51.100.2", "10.0.1.2", 8080, "TCP"),
                 ("10.0.1.1", "10.0.1.10", 8080, "TCP")}
    denied = 0
    for src_ip, src in by_ip.items():
        for dst_ip, dst in by_ip.items():
            for port, proto in ((8080, "TCP"), (5432, "TCP"), (53, "UDP"), (53, "TCP"), (9090, "TCP"), (22, "TCP")):
                if src_ip == dst_ip or (src_ip, dst_ip, port, proto) in observed:
                    continue
                verdict = ev.evaluate(src, dst, port, proto)
                assert not verdict.allowed, f"unobserved {src} -> {dst}:{port}/{proto} allowed: {verdict.reason}"
                denied += 1
    assert denied > 150
    outside = ev.by_ip("192.0.2.99")
    assert not ev.evaluate(outside, by_ip["10.0.1.1"], 8080).allowed  # only the observed external client
    assert not ev.evaluate(by_ip["10.0.1.10"], ev.by_ip("203.0.113.8"), 443).allowed


def test_generated_policies_validate_against_the_kubernetes_schema(tmp_path: Path) -> None:
    _pods, _flows, out = generate(tmp_path)
    count = 0
    for file in out.iterdir():
        for doc in yaml.safe_load_all(file.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            count += 1
    assert count == 5


def test_bad_flows_file_is_named_by_line(tmp_path: Path) -> None:
    pods, _flows = write_lab(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"fd.cip": "10.0.1.1", "fd.sip": "10.0.1.10", "fd.sport": 80, "fd.l4proto": "tcp"}\nnot json\n')
    done = subprocess.run([sys.executable, "-m", "kubeguard", "netpol", "generate", str(bad), "--pods", str(pods)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{bad}:2: not a flow record" in done.stderr and "Traceback" not in done.stderr


def test_a_canary_sharing_labels_with_its_main_workload_is_kept_apart() -> None:
    from kubeguard.cluster.podmap import PodMap
    from kubeguard.cluster.snapshot import K8sObject, Snapshot
    from kubeguard.net.netpol_generate import FlowRecord
    from kubeguard.net.netpol_generate import generate as generate_policies

    def pod(name: str, ip: str, labels: dict[str, str], owner: str) -> dict[str, object]:
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": labels,
                                            "ownerReferences": [{"kind": "StatefulSet", "name": owner,
                                                                 "controller": True}]},
                "spec": {}, "status": {"podIP": ip}}

    pods = [pod("web-0", "10.9.0.1", {"app": "web"}, "web"),
            pod("canary-0", "10.9.0.2", {"app": "web", "track": "canary"}, "canary"),
            pod("client-0", "10.9.0.3", {"app": "client"}, "client")]
    result = generate_policies([FlowRecord("10.9.0.3", "10.9.0.1", 8080, "TCP")], PodMap.from_pods(pods))
    snap = Snapshot()
    for raw in pods:
        snap.add(K8sObject(raw))
    for doc in result.policies["shop"]:
        snap.add(K8sObject(doc))
    ev = NetpolEvaluator(snap)
    client, web, canary = ev.by_ip("10.9.0.3"), ev.by_ip("10.9.0.1"), ev.by_ip("10.9.0.2")
    assert ev.evaluate(client, web, 8080).allowed
    assert not ev.evaluate(client, canary, 8080).allowed
    web_policy = next(d for d in result.policies["shop"] if d["metadata"]["name"] == "kubeguard-statefulset-web")
    assert web_policy["spec"]["podSelector"]["matchExpressions"] == [{"key": "track", "operator": "DoesNotExist"}]
    kubernetes_validate.validate(web_policy, K8S_VERSION, strict=True)
