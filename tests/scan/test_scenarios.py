"""Scenario clusters through the loader and the whole engine: every finding asserted exactly, as (check, resource).

The scenario folders hold no control-plane configuration, so their expected sets are complete; the
Tesla example also has kubeadm and kubelet configs, whose control-plane findings are asserted by id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkutil import check_findings, pairs, snapshot_from_dir

from kubeguard.model import Severity

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = REPO / "tests" / "fixtures" / "clusters"

EXPECTED: dict[str, set[tuple[str, str]]] = {
    "hardened": set(),
    "rbac-escalation": {
        ("rbac-escalate", "ServiceAccount/ci/ci-deployer"),
        ("rbac-escalate", "User/dev@example.com"),
        ("rbac-escalate", "Group/oncall"),
        ("rbac-token-create", "ServiceAccount/platform/identity-broker"),
        ("rbac-csr-approve", "ServiceAccount/platform/identity-broker"),
        ("rbac-webhook-control", "ServiceAccount/policy/policy-engine"),
        ("rbac-nodes-proxy", "ServiceAccount/policy/policy-engine"),
    },
    "privileged-node-access": {
        ("host-namespace", "DaemonSet/monitoring/node-agent"),
        ("host-path", "DaemonSet/monitoring/node-agent"),
        ("runtime-socket", "DaemonSet/monitoring/node-agent"),
        ("privileged", "DaemonSet/monitoring/node-agent"),
        ("privilege-escalation-allowed", "DaemonSet/monitoring/node-agent"),
        ("run-as-root", "DaemonSet/monitoring/node-agent"),
        ("host-path", "Pod/monitoring/net-debug"),
        ("dangerous-capability", "Pod/monitoring/net-debug"),
    },
    "exposed-databases": {
        ("exposed-service", "Service/data/cache"),
        ("exposed-service", "Service/data/documents"),
        ("exposed-service", "Service/data/search"),
        ("exposed-service", "Service/data/prometheus"),
        ("sensitive-port-exposed", "Service/data/cache"),
        ("sensitive-port-exposed", "Service/data/search"),
        ("sensitive-port-exposed", "Service/data/prometheus"),
    },
    "multi-tenant": {
        ("rbac-anonymous", "User/system:anonymous"),
        ("rbac-anonymous", "Group/system:authenticated"),
        ("rbac-secrets-read", "Group/system:authenticated"),
        ("rbac-default-sa", "ServiceAccount/team-a/default"),
        ("rbac-secrets-read", "ServiceAccount/team-a/default"),
        ("rbac-pod-exec", "ServiceAccount/team-a/default"),
        ("rbac-pod-create", "ServiceAccount/team-a/default"),
        ("rbac-token-create", "ServiceAccount/team-a/default"),
        ("rbac-escalate", "ServiceAccount/team-a/default"),
        ("sa-token-automount", "Deployment/team-a/app-a"),
        ("missing-network-policy", "Namespace/team-a"),
    },
    "aggregated-clusterroles": {
        ("rbac-pod-exec", "Group/platform-team"),
        ("rbac-secrets-read", "Group/platform-team"),
        ("rbac-pod-create", "ServiceAccount/argocd/argocd-deployer"),
        ("rbac-wildcard", "ServiceAccount/argocd/argocd-deployer"),
        # not bound, and not aggregated into the bound platform-operator (its label says "false")
        ("rbac-pod-create", "ClusterRole/unrelated-reader"),
    },
    "secrets-everywhere": {
        ("secret-in-env", "Deployment/apps/notifier"),
        ("secret-in-env", "CronJob/apps/backup"),
    },
}
TESLA = {
    ("unauthenticated-console", "Deployment/kubernetes-dashboard/kubernetes-dashboard"),
    ("rbac-cluster-admin", "ServiceAccount/kubernetes-dashboard/kubernetes-dashboard"),
    ("sa-token-automount", "Deployment/kubernetes-dashboard/kubernetes-dashboard"),
    ("exposed-service", "Service/kubernetes-dashboard/kubernetes-dashboard"),
    ("secret-in-env", "Deployment/telemetry/telemetry-ingest"),
    ("no-resource-limits", "Deployment/telemetry/telemetry-ingest"),
    ("no-resource-limits", "Deployment/kubernetes-dashboard/kubernetes-dashboard"),
    ("missing-network-policy", "Namespace/telemetry"),
    ("missing-network-policy", "Namespace/kubernetes-dashboard"),
}


def test_every_scenario_folder_has_expectations() -> None:
    assert {p.name for p in CLUSTERS.iterdir() if p.is_dir()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_findings_exact(name: str) -> None:
    findings = check_findings(snapshot_from_dir(CLUSTERS / name))
    assert pairs(findings) == EXPECTED[name]
    for finding in findings:
        assert finding.file and finding.file.startswith(str(CLUSTERS / name)) and finding.line
        assert finding.evidence and finding.remediation and finding.mitre


TESLA_CONTROL_PLANE = {"kubelet-anonymous-auth", "kubelet-authz-always-allow", "kubelet-read-only-port",
                       "apiserver-anonymous-auth", "apiserver-no-audit"}


def test_tesla_example_is_the_2018_breach() -> None:
    findings = check_findings(snapshot_from_dir(REPO / "examples" / "tesla"))
    assert {p for p in pairs(findings) if not p[0].startswith(("kubelet-", "apiserver-", "etcd-"))} == TESLA
    assert {f.check for f in findings if f.category == "control plane"} == TESLA_CONTROL_PLANE
    required = {"unauthenticated-console", "rbac-cluster-admin", "secret-in-env", "no-resource-limits",
                "missing-network-policy", "exposed-service"}
    assert required <= {f.check for f in findings}
    by = {f.check: f for f in findings}
    console = by["unauthenticated-console"]
    assert console.severity == Severity.CRITICAL
    assert "--enable-skip-login" in console.evidence and "rbac-cluster-admin" in console.evidence
    assert "Service/kubernetes-dashboard/kubernetes-dashboard (type NodePort)" in console.evidence
    assert "AWS_ACCESS_KEY_ID" in by["secret-in-env"].evidence
    assert by["secret-in-env"].severity == Severity.CRITICAL


def test_no_secret_value_reaches_any_output() -> None:
    leaked = ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "R2d2C3p0L7k9", "XXXXXXXXXXXXXXXXXXXXXXXX", "Zr8uP2qLw9",
              "Tr0ub4dor", "b3BlbnNzaC1rZXktdjEA", "acme-backups"]
    for folder in (REPO / "examples" / "tesla", CLUSTERS / "secrets-everywhere"):
        dumped = json.dumps([f.to_dict() for f in check_findings(snapshot_from_dir(folder))])
        for value in leaked:
            assert value not in dumped
    notifier = next(f for f in check_findings(snapshot_from_dir(CLUSTERS / "secrets-everywhere"))
                    if f.resource.name == "notifier" and f.workload and f.workload.container == "notifier")
    for var in ("SLACK_WEBHOOK_URL", "DATABASE_URL", "SMTP_PASSWORD"):
        assert var in notifier.evidence
    assert "FEATURE_FLAGS" not in notifier.evidence and "SMTP_PASSWORD_REF" not in notifier.evidence


@pytest.mark.parametrize("name", ["multi-tenant", "exposed-databases", "privileged-node-access"])
def test_same_findings_from_a_kubectl_dump(name: str, tmp_path: Path) -> None:
    """A `kubectl get -A -o json` List of the same objects gives the same findings as the folder."""
    folder = snapshot_from_dir(CLUSTERS / name)
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [o.raw for o in folder.objects]},
                               indent=2))
    from_dump = check_findings(snapshot_from_dir(dump))
    assert pairs(from_dump) == EXPECTED[name]
    assert all(f.file == str(dump) and f.line for f in from_dump)
