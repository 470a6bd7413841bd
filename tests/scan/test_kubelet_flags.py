"""Kubelet flags from a node's systemd drop-in and environment files, laid over its config file."""

from __future__ import annotations

import shutil
from pathlib import Path

from kubeguard.cluster.kubelet_flags import is_flags_file, node_root
from kubeguard.cluster.loader import load_path
from kubeguard.model import Severity
from kubeguard.posture.check_runner import run_checks

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "nodes"


def kubelet_findings(path: Path) -> dict[tuple[str, str], tuple[Severity, str, int | None]]:
    snap = load_path(path)
    assert not snap.problems, [str(p) for p in snap.problems]
    return {(f.check, str(f.resource)): (f.severity, Path(f.file or "").name, f.line)
            for f in run_checks(snap) if f.check.startswith("kubelet-")}


def test_flags_from_env_files_override_the_config_file_with_their_lines() -> None:
    assert kubelet_findings(NODES / "kubeadm-open") == {
        # config.yaml disables anonymous auth; kubeadm-flags.env turns it back on (flags win)
        ("kubelet-anonymous-auth", "kubelet/kubeadm-open"): (Severity.CRITICAL, "kubeadm-flags.env", 1),
        # KUBELET_EXTRA_ARGS from /etc/default/kubelet comes last on the command line
        ("kubelet-authz-always-allow", "kubelet/kubeadm-open"): (Severity.CRITICAL, "kubelet", 2),
        ("kubelet-read-only-port", "kubelet/kubeadm-open"): (Severity.MEDIUM, "kubelet", 2),
    }


def test_hardened_node_has_no_kubelet_finding_and_one_kubelet() -> None:
    assert kubelet_findings(NODES / "kubeadm-hardened") == {}
    kubelets = [c for c in load_path(NODES).components if c.component == "kubelet"]
    assert sorted(c.node for c in kubelets) == ["kubeadm-hardened", "kubeadm-open"]
    hardened = next(c for c in kubelets if c.node == "kubeadm-hardened")
    assert hardened.flags["node-ip"] == "10.0.0.12"
    assert hardened.flags["rotate-certificates"] == "true"  # from config.yaml: no flag overrides it
    assert "config" not in hardened.flags


def test_later_flag_wins_in_exec_start_order(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    shutil.copytree(NODES / "kubeadm-hardened", node)
    (node / "var/lib/kubelet/kubeadm-flags.env").write_text('KUBELET_KUBEADM_ARGS="--read-only-port=10255"\n')
    assert ("kubelet-read-only-port", "kubelet/n1") in kubelet_findings(node)
    (node / "etc/default/kubelet").write_text("KUBELET_EXTRA_ARGS='--read-only-port=0'\n")  # extra args come last
    assert kubelet_findings(node) == {}


def test_flags_file_without_its_config_file_assumes_kubeadm_defaults_and_says_so(tmp_path: Path) -> None:
    flags = tmp_path / "worker-3" / "var" / "lib" / "kubelet" / "kubeadm-flags.env"
    flags.parent.mkdir(parents=True)
    flags.write_text('# written by kubeadm join\nKUBELET_KUBEADM_ARGS="--rotate-certificates=false"\n')
    snap = load_path(tmp_path)
    assert [str(p) for p in snap.problems] == [
        "<kubeadm drop-in defaults>: kubelet --config /var/lib/kubelet/config.yaml is not in the scan: "
        "kubeadm defaults assumed for it"]
    found = {(f.check, str(f.resource), f.line) for f in run_checks(snap) if f.check.startswith("kubelet-")}
    assert found == {("kubelet-no-cert-rotation", "kubelet/worker-3", 2)}


def test_no_config_flag_means_the_binary_defaults(tmp_path: Path) -> None:
    drop_in = tmp_path / "etc" / "systemd" / "system" / "kubelet.service.d" / "20-custom.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text("[Service]\nExecStart=\nExecStart=/usr/local/bin/kubelet --kubeconfig=/etc/kubelet.conf\n")
    checks = {f.check for f in run_checks(load_path(tmp_path)) if f.check.startswith("kubelet-")}
    # a kubelet with no config file and no flags: anonymous, AlwaysAllow, read-only port 10255
    assert checks == {"kubelet-anonymous-auth", "kubelet-authz-always-allow", "kubelet-read-only-port",
                      "kubelet-no-cert-rotation"}


def test_bad_lines_are_one_problem_each_and_the_rest_is_read(tmp_path: Path) -> None:
    node = tmp_path / "bad"
    shutil.copytree(NODES / "kubeadm-open", node)
    (node / "var/lib/kubelet/kubeadm-flags.env").write_text(
        'KUBELET_KUBEADM_ARGS="--anonymous-auth=true\nthis is not an assignment\n')
    snap = load_path(node)
    assert sorted(str(p).split(str(node) + "/")[1] for p in snap.problems) == [
        "var/lib/kubelet/kubeadm-flags.env:1: KUBELET_KUBEADM_ARGS: No closing quotation: not checked",
        "var/lib/kubelet/kubeadm-flags.env:2: not a NAME=value assignment: not checked",
    ]
    checks = {f.check for f in run_checks(snap) if f.check.startswith("kubelet-")}
    assert checks == {"kubelet-authz-always-allow", "kubelet-read-only-port"}  # /etc/default/kubelet still read


def test_file_recognition_and_node_roots() -> None:
    assert is_flags_file(Path("/n/var/lib/kubelet/kubeadm-flags.env"))
    assert is_flags_file(Path("/n/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"))
    assert is_flags_file(Path("/n/etc/sysconfig/kubelet"))
    assert not is_flags_file(Path("/n/etc/kubelet"))
    assert not is_flags_file(Path("/n/etc/systemd/system/other.service.d/10.conf"))
    assert node_root(Path("/x/n1/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")) == Path("/x/n1")
    assert node_root(Path("/x/n1/etc/default/kubelet")) == Path("/x/n1")
    assert node_root(Path("/x/flat/kubeadm-flags.env")) == Path("/x/flat")
