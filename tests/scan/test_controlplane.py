"""Control-plane checks: kubeadm/kind/kubelet configs and static pods yield the matching categories."""

from __future__ import annotations

from pathlib import Path

from kubeguard.cluster.loader import load_path
from kubeguard.model import Severity
from kubeguard.posture.check_runner import run_checks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "controlplane"
CONTROL_PLANE = ("apiserver-", "etcd-", "kubelet-")


def control_plane(name: str) -> dict[tuple[str, str], tuple[Severity, int | None]]:
    findings = run_checks(load_path(FIXTURES / name))
    return {(f.check, str(f.resource)): (f.severity, f.line) for f in findings if f.check.startswith(CONTROL_PLANE)}


def test_open_kind_cluster_yields_every_category_with_lines() -> None:
    assert control_plane("kind-insecure.yaml") == {
        ("apiserver-anonymous-auth", "kube-apiserver/lab-control-plane"): (Severity.CRITICAL, 10),
        ("apiserver-authz-always-allow", "kube-apiserver/lab-control-plane"): (Severity.CRITICAL, 11),
        ("apiserver-weak-admission", "kube-apiserver/lab-control-plane"): (Severity.HIGH, 12),
        ("apiserver-insecure-port", "kube-apiserver/lab-control-plane"): (Severity.CRITICAL, 13),
        ("apiserver-no-audit", "kube-apiserver/lab-control-plane"): (Severity.MEDIUM, 7),
        ("etcd-no-client-auth", "etcd/lab-control-plane"): (Severity.CRITICAL, 17),
        ("kubelet-anonymous-auth", "kubelet/lab-control-plane"): (Severity.CRITICAL, 26),
        ("kubelet-authz-always-allow", "kubelet/lab-control-plane"): (Severity.CRITICAL, 27),
        ("kubelet-read-only-port", "kubelet/lab-worker"): (Severity.MEDIUM, 34),
    }


def test_hardened_kubeadm_config_has_no_control_plane_finding() -> None:
    assert control_plane("kubeadm-hardened.yaml") == {}


def test_static_pods_and_kubelet_file() -> None:
    assert control_plane("kube-apiserver.yaml") == {
        ("apiserver-insecure-port", "kube-apiserver/kube-apiserver.yaml"): (Severity.CRITICAL, 13),
        ("apiserver-anonymous-auth", "kube-apiserver/kube-apiserver.yaml"): (Severity.MEDIUM, 1),
        ("apiserver-authz-always-allow", "kube-apiserver/kube-apiserver.yaml"): (Severity.MEDIUM, 14),
        ("apiserver-no-audit", "kube-apiserver/kube-apiserver.yaml"): (Severity.MEDIUM, 1),
        ("apiserver-weak-admission", "kube-apiserver/kube-apiserver.yaml"): (Severity.MEDIUM, 17),
    }
    assert control_plane("etcd.yaml") == {("etcd-no-client-auth", "etcd/etcd.yaml"): (Severity.CRITICAL, 15)}
    assert control_plane("kubelet-config.yaml") == {
        ("kubelet-anonymous-auth", "kubelet/kubelet-config.yaml"): (Severity.CRITICAL, 6),
        ("kubelet-authz-always-allow", "kubelet/kubelet-config.yaml"): (Severity.CRITICAL, 10),
        ("kubelet-read-only-port", "kubelet/kubelet-config.yaml"): (Severity.MEDIUM, 11),
        ("kubelet-no-cert-rotation", "kubelet/kubelet-config.yaml"): (Severity.LOW, 2),
    }


def test_evidence_names_the_flag_and_where_it_was_set() -> None:
    findings = run_checks(load_path(FIXTURES / "etcd.yaml"))
    [etcd] = [f for f in findings if f.check == "etcd-no-client-auth"]
    assert "--listen-client-urls=http://0.0.0.0:2379 (etcd.yaml:15)" in etcd.evidence
    assert "--client-cert-auth=false (default)" in etcd.evidence


def test_auto_tls_alone_is_high_and_a_tls_etcd_is_clean(tmp_path: Path) -> None:
    base = (FIXTURES / "etcd.yaml").read_text().replace("http://", "https://")
    tls = base.replace("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/etcd\n        - --client-cert-auth=true"
                       "\n        - --cert-file=/pki/server.crt\n        - --key-file=/pki/server.key")
    (tmp_path / "etcd.yaml").write_text(tls)
    assert [f.check for f in run_checks(load_path(tmp_path)) if f.check.startswith("etcd")] == []
    (tmp_path / "etcd.yaml").write_text(tls.replace("--cert-file=/pki/server.crt", "--auto-tls=true"))
    [auto] = [f for f in run_checks(load_path(tmp_path)) if f.check.startswith("etcd")]
    assert auto.severity == Severity.HIGH
    assert "--auto-tls=true" in auto.evidence
