"""Container escapes: privileged containers, added capabilities with hostPID, sensitive host paths."""

from __future__ import annotations

from kubeguard.cluster.snapshot import K8sObject
from kubeguard.model import Finding
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.context import BuildContext, PodInfo
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.podsecurity import covers, has_capability, is_privileged, reaches_runtime_socket
from kubeguard.posture.rbac import Subject


@edge_rule("escapes", stage=50, kinds=(
    "CE_PRIV_MOUNT", "CE_NSENTER", "CE_SYS_PTRACE", "CE_MODULE_LOAD", "EXPLOIT_RUNTIME_SOCK",
    "CE_UMH_CORE_PATTERN", "EXPLOIT_HOST_WRITE", "EXPLOIT_HOST_READ", "CE_VAR_LOG_SYMLINK", "NODE_TOKENS",
))
def escape_edges(ctx: BuildContext) -> None:
    for info in ctx.pods:
        owner = info.template.owner
        host_pid = info.template.spec.get("hostPID") is True
        for ctr, spec in info.containers:
            steps: list[tuple[str, str, list[Finding]]] = []
            name = spec.get("name")
            priv = ctx.index.condition(cond.PRIVILEGED, owner, f"container {name} is privileged", str(name))
            pid = ctx.index.condition(cond.HOST_PID, owner, "hostPID: true")
            if is_privileged(spec):
                steps.append(("CE_PRIV_MOUNT", f"container {name} is privileged", [priv]))
                if host_pid:
                    steps.append(("CE_NSENTER", f"container {name} is privileged and the pod has hostPID", [
                        priv, pid]))
            for cap, kind in (("SYS_PTRACE", "CE_SYS_PTRACE"), ("SYS_MODULE", "CE_MODULE_LOAD")):
                if has_capability(spec, cap) and (host_pid or kind == "CE_MODULE_LOAD"):
                    finding = ctx.index.condition(cond.CAPABILITY, owner, f"container {name} adds {cap}",
                                                   str(name))
                    extra = [pid] if kind == "CE_SYS_PTRACE" else []
                    steps.append((kind, f"container {name} adds {cap}" + (" with hostPID" if extra else ""),
                                  [finding, *extra]))
            for mount in wl.host_mounts(info.template, spec):
                steps.extend(_host_path_steps(ctx, info, owner, mount))
            for kind, evidence, findings in steps:
                target_hosts = info.placement
                for host in target_hosts:
                    if kind == "EXPLOIT_HOST_READ":
                        ctx.graph.add_edge(ctr, ctx.tokens_node(host), kind, evidence, findings)
                    else:
                        ctx.graph.add_edge(ctr, host, kind, evidence, findings)


def _host_path_steps(ctx: BuildContext, info: PodInfo, owner: K8sObject,
                     mount: wl.HostMount) -> list[tuple[str, str, list[Finding]]]:
    access = "read-write" if mount.writable else "read-only"
    finding = ctx.index.condition(cond.HOST_PATH, owner, f"hostPath {mount.path} mounted {access}",
                                   scan_checks=("host-path",))
    where = f"hostPath {mount.path} ({access})"
    steps: list[tuple[str, str, list[Finding]]] = []
    if reaches_runtime_socket(mount.path):
        socket = ctx.index.condition(cond.HOST_PATH, owner, f"hostPath {mount.path}: runtime socket",
                                      scan_checks=("runtime-socket", "host-path"))
        steps.append(("EXPLOIT_RUNTIME_SOCK", f"{where} exposes the container runtime socket", [socket]))
    if mount.writable and covers(mount.path, "/proc/sys/kernel/core_pattern"):
        steps.append(("CE_UMH_CORE_PATTERN", f"{where}: /proc/sys/kernel/core_pattern is writable", [finding]))
    if mount.writable and any(covers(mount.path, s) or (s != "/" and covers(s, mount.path))
                              for s in wl.WRITE_SENSITIVE):
        steps.append(("EXPLOIT_HOST_WRITE", f"{where} is a sensitive host path", [finding]))
    if covers(mount.path, wl.KUBELET_PODS):
        steps.append(("EXPLOIT_HOST_READ", f"{where} holds every pod's token under {wl.KUBELET_PODS}", [finding]))
    if mount.writable and covers(mount.path, wl.VAR_LOG) and ctx.rbac is not None:
        namespace, name = info.sa_node.removeprefix("sa:").split("/", 1)
        grants = ctx.rbac.allows(Subject("ServiceAccount", name, namespace), "get", "pods",
                                  namespace=namespace, subresource="log")
        if grants:
            steps.append(("CE_VAR_LOG_SYMLINK", f"{where} and the pod's identity may read pods/log "
                          f"({grants[0].describe()})", [finding]))
    return steps
