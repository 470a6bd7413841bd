"""deploy/: every manifest is valid against the Kubernetes schema, our own scan finds nothing high or critical
(the agent's documented privileges excepted, the console without exception), and the console runs with least
privilege behind a NetworkPolicy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXCEPTIONS = DEPLOY / ".kubeguard" / "scan-exceptions.yaml"
K8S_VERSION = "1.32.0"
CHART = DEPLOY / "helm"  # Helm templates: rendered and checked by test_console_helm.py


def plain_folders() -> list[Path]:
    """deploy/'s plain manifest folders (everything but the Helm chart and the scan's own settings)."""
    return [d for d in sorted(DEPLOY.iterdir()) if d.is_dir() and d != CHART and not d.name.startswith(".")]


def documents() -> list[tuple[Path, dict]]:
    return [(f, d) for f in sorted(DEPLOY.rglob("*.yaml"))
            if ".kubeguard" not in f.parts and CHART not in f.parents
            for d in yaml.safe_load_all(f.read_text()) if d]


def test_every_manifest_is_valid_against_the_kubernetes_schema() -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {"DaemonSet", "Deployment", "Service", "ServiceAccount", "NetworkPolicy",
                                            "ClusterRole", "ClusterRoleBinding"}
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc.message}") from exc
    bad = json.loads(json.dumps(docs[0][1]))
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = "root"
    try:
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError:
        pass
    else:
        raise AssertionError("the schema check accepted a string runAsUser")


def scan(*extra: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "kubeguard", "scan", *map(str, plain_folders()), "-o", "json", *extra],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_our_scan_finds_nothing_high_or_critical_in_deploy() -> None:
    report = scan("--exceptions", str(EXCEPTIONS))
    assert report["problems"] == []
    assert report["summary"]["by_severity"]["critical"] == 0 and report["summary"]["by_severity"]["high"] == 0
    console = [f for f in scan()["findings"] if "console" in f["resource"]["name"]]
    assert console == []  # the console needs no exception at all
    excepted = yaml.safe_load(EXCEPTIONS.read_text())["exceptions"]
    assert {e["name"] for e in excepted} == {"kubeguard-agent"} and all(e["reason"] for e in excepted)


def test_console_runs_with_least_privilege() -> None:
    docs = [d for _, d in documents()]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "kubeguard-console"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and not spec.get("hostPID") and not spec.get("hostNetwork")
    assert spec["automountServiceAccountToken"] is False
    sa = spec["serviceAccountName"]
    bound = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s.get("name") == sa for s in d["subjects"])]
    assert bound == []  # the console never calls the Kubernetes API
    assert not [d for d in docs if d["kind"] == "Secret"]  # no secret value ships in deploy/
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["KUBEGUARD_CONSOLE_DB"]["valueFrom"]
    assert "--setup-token-file=/etc/kubeguard/setup/setup-token" in container["args"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_networkpolicy_admits_only_agents_and_allowed_namespaces_on_8443() -> None:
    docs = [d for _, d in documents()]
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "kubeguard-console"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kubeguard-console"}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    sources = [next(iter(s)) for s in rule["from"]]
    assert sources == ["podSelector", "namespaceSelector"]
    egress_ports = {p["port"] for r in spec["egress"] for p in r["ports"]}
    assert egress_ports == {5432, 53}
    agent_policy = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "kubeguard-agent"]
    assert agent_policy and "ingress" not in agent_policy[0]["spec"]  # nothing may connect to an agent


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("ENTRYPOINT") and "kubeguard" in line for line in lines)
