"""Control-plane configuration -> effective component flags, with the components' own precedence."""

from __future__ import annotations

from pathlib import Path

from kubeguard.cluster.components import parse_command_flags
from kubeguard.cluster.loader import load_path
from kubeguard.cluster.snapshot import ComponentConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "controlplane"


def by_node(path: Path) -> dict[tuple[str, str], ComponentConfig]:
    snap = load_path(path)
    assert snap.problems == []
    return {(c.component, c.node): c for c in snap.components}


def test_kind_patches_give_one_set_of_components_per_node() -> None:
    comps = by_node(FIXTURES / "kind-insecure.yaml")
    assert sorted(comps) == [
        ("etcd", "lab-control-plane"), ("kube-apiserver", "lab-control-plane"),
        ("kube-controller-manager", "lab-control-plane"), ("kube-scheduler", "lab-control-plane"),
        ("kubelet", "lab-control-plane"), ("kubelet", "lab-worker"), ("kubelet", "lab-worker2"),
    ]
    api = comps["kube-apiserver", "lab-control-plane"]
    assert api.flags["anonymous-auth"] == "true"
    assert api.flags["insecure-port"] == "8080"
    assert api.flags["authorization-mode"] == "AlwaysAllow"  # extraArgs override kubeadm's Node,RBAC
    assert str(api.sources["insecure-port"]).endswith("kind-insecure.yaml:13")
    etcd = comps["etcd", "lab-control-plane"]
    assert (etcd.flags["client-cert-auth"], etcd.flags["auto-tls"]) == ("false", "true")
    # InitConfiguration patches reach only the first control plane, JoinConfiguration the workers
    assert comps["kubelet", "lab-control-plane"].flags["anonymous-auth"] == "true"
    assert comps["kubelet", "lab-control-plane"].flags["read-only-port"] == "0"
    assert comps["kubelet", "lab-worker"].flags["anonymous-auth"] == "false"
    assert comps["kubelet", "lab-worker"].flags["read-only-port"] == "10255"
    # a node with no patch runs kind's (kubeadm's) defaults
    assert comps["kubelet", "lab-worker2"].flags["authorization-mode"] == "Webhook"


def test_kubeadm_v1beta4_list_args_and_kubelet_config_with_flags_winning(tmp_path: Path) -> None:
    comps = by_node(FIXTURES / "kubeadm-hardened.yaml")
    api = comps["kube-apiserver", "cp-1"]
    assert api.flags["anonymous-auth"] == "false"
    assert api.flags["authorization-mode"] == "Node,RBAC"
    assert api.flags["enable-admission-plugins"] == "NodeRestriction,PodSecurity"
    kubelet = comps["kubelet", "cp-1"]
    assert kubelet.flags["rotate-server-certificates"] == "true"
    assert str(kubelet.sources["read-only-port"]).endswith("kubeadm-hardened.yaml:31")
    # the kubelet's flags override its config file, as the kubelet does
    text = (FIXTURES / "kubeadm-hardened.yaml").read_text().replace(
        'value: "true"', 'value: "true"\n    - name: read-only-port\n      value: "10255"', 1)
    (tmp_path / "kubeadm.yaml").write_text(text)
    assert by_node(tmp_path / "kubeadm.yaml")["kubelet", "cp-1"].flags["read-only-port"] == "10255"


def test_kubelet_config_file_alone_uses_the_file_and_its_defaults(tmp_path: Path) -> None:
    kubelet = by_node(FIXTURES / "kubelet-config.yaml")["kubelet", ""]
    assert kubelet.flags["anonymous-auth"] == "true"
    assert kubelet.flags["authorization-mode"] == "AlwaysAllow"
    assert kubelet.flags["rotate-certificates"] == "false"
    (tmp_path / "k.yaml").write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n")
    defaults = by_node(tmp_path / "k.yaml")["kubelet", ""]
    assert (defaults.flags["anonymous-auth"], defaults.flags["read-only-port"]) == ("false", "0")


def test_static_pods_flags_with_binary_defaults_for_the_rest() -> None:
    api = by_node(FIXTURES / "kube-apiserver.yaml")["kube-apiserver", ""]
    assert api.flags["anonymous-auth"] == "true"  # not set: kube-apiserver's default
    assert api.flags["enable-admission-plugins"] == "NamespaceLifecycle"  # `--flag value` form
    assert str(api.sources["insecure-bind-address"]).endswith("kube-apiserver.yaml:13")
    etcd = by_node(FIXTURES / "etcd.yaml")["etcd", ""]
    assert etcd.flags["listen-client-urls"] == "http://0.0.0.0:2379"
    assert etcd.flags["client-cert-auth"] == "false"


def test_command_flag_forms() -> None:
    assert parse_command_flags(["--a=1", "--b", "2", "--c", "--d=x=y", "-v", "3"]) == [
        ("a", "1", 0), ("b", "2", 1), ("c", "true", 3), ("d", "x=y", 4), ("v", "3", 5)]


def test_broken_kind_patch_is_a_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "kind.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nkubeadmConfigPatches:\n"
        "  - |\n    kind: ClusterConfiguration\n    apiServer: [oops\n")
    snap = load_path(tmp_path / "kind.yaml")
    assert [p.where.rpartition(":")[2] for p in snap.problems] == ["6"]
    assert snap.problems[0].message.startswith("malformed YAML")
    assert {c.component for c in snap.components} >= {"kube-apiserver", "kubelet"}
