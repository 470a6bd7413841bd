"""deploy/agent: least privilege as documented (no privileged mode, read-only host mounts, read-only RBAC)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "agent"


def docs() -> list[dict]:
    return [d for f in sorted(DEPLOY.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def test_daemonset_is_not_privileged_and_mounts_host_paths_read_only() -> None:
    (ds,) = [d for d in docs() if d["kind"] == "DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH",
                                              "NET_ADMIN"}
    host_volumes = {v["name"] for v in spec["volumes"] if "hostPath" in v}
    writable = {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert host_volumes & writable == {"store"}
    assert spec["hostPID"] is True and not spec.get("hostNetwork")
    assert "--metrics-port=9376" in container["args"] and not any("metrics-host" in a for a in container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_cluster_role_only_reads_pods_and_nodes() -> None:
    (role,) = [d for d in docs() if d["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]
    (binding,) = [d for d in docs() if d["kind"] == "ClusterRoleBinding"]
    (ds,) = [d for d in docs() if d["kind"] == "DaemonSet"]
    assert binding["subjects"][0]["name"] == ds["spec"]["template"]["spec"]["serviceAccountName"]
