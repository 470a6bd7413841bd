"""Workload checks: what each pod template would run with, per pod and per container.

Every pod-bearing object is seen once through `Snapshot.pod_templates()` (a Deployment's pods
are reported on the Deployment). Findings name the container and the field path
(`spec.template.spec.containers[0].securityContext.privileged`) in their evidence and carry the
container in `workload`, so there is one finding per (check, resource, container).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from kubeguard.cluster.manifest_fields import as_dict, as_list, dicts
from kubeguard.cluster.snapshot import POD_TEMPLATE_PATHS, K8sObject, PodTemplate, Snapshot
from kubeguard.model import Finding, Resource, Severity, Workload
from kubeguard.net.netpol import Endpoint, NetpolEvaluator
from kubeguard.posture.podsecurity import added_capabilities, is_privileged, is_runtime_socket, security_context
from kubeguard.posture.rbac import Subject
from kubeguard.posture.rbac_checks import api_grants, dangerous_rights, rbac_index, rights_names
from kubeguard.posture.registry import PostureCheck, evaluator, register
from kubeguard.posture.secrets import find_secret

W = "workloads"
PRIVILEGED = PostureCheck(
    "privileged", W, "Privileged container", Severity.HIGH,
    "Remove securityContext.privileged; grant only the capabilities the container needs.",
    ("T1610", "T1611", "MS-TA9018"),
)
HOST_NAMESPACE = PostureCheck(
    "host-namespace", W, "Pod shares the node's namespaces", Severity.HIGH,
    "Remove hostPID, hostIPC and hostNetwork unless the pod is a node agent that needs them.",
    ("T1611",),
)
HOST_PATH = PostureCheck(
    "host-path", W, "Writable or sensitive hostPath volume", Severity.MEDIUM,
    "Use a PersistentVolume or emptyDir; if a host path is unavoidable mount it readOnly and narrowly.",
    ("T1611", "MS-TA9013"),
)
RUNTIME_SOCKET = PostureCheck(
    "runtime-socket", W, "Container runtime socket mounted", Severity.CRITICAL,
    "Never mount docker.sock, containerd.sock or crio.sock: it is root on the node.",
    ("T1611", "T1610"),
)
DANGEROUS_CAPABILITY = PostureCheck(
    "dangerous-capability", W, "Dangerous Linux capability added", Severity.HIGH,
    "Drop ALL capabilities and add back only harmless ones (e.g. NET_BIND_SERVICE).",
    ("T1611",),
)
PRIVILEGE_ESCALATION = PostureCheck(
    "privilege-escalation-allowed", W, "Privilege escalation allowed", Severity.MEDIUM,
    "Set securityContext.allowPrivilegeEscalation: false.",
    ("T1068",),
)
RUN_AS_ROOT = PostureCheck(
    "run-as-root", W, "Container may run as root", Severity.MEDIUM,
    "Set runAsNonRoot: true and a non-zero runAsUser.",
    ("T1611",),
)
WRITABLE_ROOT_FS = PostureCheck(
    "writable-root-fs", W, "Writable root filesystem", Severity.LOW,
    "Set securityContext.readOnlyRootFilesystem: true; mount emptyDir where the app must write.",
    ("T1525",),
)
NO_RESOURCE_LIMITS = PostureCheck(
    "no-resource-limits", W, "No CPU or memory limit", Severity.MEDIUM,
    "Set resources.limits.cpu and resources.limits.memory: a miner hides best where nothing caps it.",
    ("T1496", "MS-TA9039"),
)
SECRET_IN_ENV = PostureCheck(
    "secret-in-env", W, "Credential written literally in the environment", Severity.HIGH,
    "Move the value to a Secret (env.valueFrom.secretKeyRef) or workload identity, and rotate it now.",
    ("T1552.001", "MS-TA9027"),
)
SA_TOKEN_AUTOMOUNT = PostureCheck(
    "sa-token-automount", W, "Token of a service account with API rights is mounted", Severity.MEDIUM,
    "Set automountServiceAccountToken: false on the pod (or its service account) unless it calls the API.",
    ("T1528", "MS-TA9016"),
)
IMAGE_UNPINNED = PostureCheck(
    "image-unpinned", W, "Image not pinned", Severity.LOW,
    "Use an immutable reference: a version tag, better a digest (image@sha256:...).",
    ("T1525",),
)
MISSING_NETWORK_POLICY = PostureCheck(
    "missing-network-policy", W, "Pods not selected by any NetworkPolicy", Severity.MEDIUM,
    "Add a default-deny NetworkPolicy to the namespace and allow only the flows each workload needs.",
    ("T1210", "MS-TA9034"),
)
register(PRIVILEGED, HOST_NAMESPACE, HOST_PATH, RUNTIME_SOCKET, DANGEROUS_CAPABILITY, PRIVILEGE_ESCALATION,
         RUN_AS_ROOT, WRITABLE_ROOT_FS, NO_RESOURCE_LIMITS, SECRET_IN_ENV, SA_TOKEN_AUTOMOUNT, IMAGE_UNPINNED,
         MISSING_NETWORK_POLICY)

SENSITIVE_HOST_PATHS = ("/etc", "/var/log", "/proc", "/root", "/home", "/var/lib/kubelet", "/var/lib/etcd", "/boot",
                        "/sys", "/dev")
CRITICAL_CAPABILITIES = frozenset({"SYS_ADMIN", "SYS_MODULE", "ALL"})
DANGEROUS_CAPABILITIES = frozenset({"SYS_PTRACE", "NET_ADMIN", "NET_RAW", "DAC_READ_SEARCH", "BPF"}
                                   | CRITICAL_CAPABILITIES)


ConfigMaps = dict[tuple[str, str], dict[str, Any]]  # (namespace, name) -> data


def template_path(pod: PodTemplate) -> str:
    """Field path of the pod spec inside its owner: `spec` or `spec.template.spec`."""
    return ".".join((*POD_TEMPLATE_PATHS.get(pod.owner.kind, ()), "spec"))


def workload_of(pod: PodTemplate, container: dict[str, Any] | None = None) -> Workload:
    """Identity of a pod template (and one of its containers)."""
    return Workload(
        namespace=pod.namespace,
        pod=pod.owner.name,
        container=str(container.get("name", "")) if container else "",
        image=str(container.get("image", "")) if container else "",
        service_account=pod.service_account,
        labels=tuple(sorted((str(k), str(v)) for k, v in pod.labels.items())),
    )


def indexed_containers(pod: PodTemplate) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, container) for every container, init and ephemeral included."""
    base = template_path(pod)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        items = pod.spec.get(key)
        if isinstance(items, list):
            for i, container in enumerate(items):
                if isinstance(container, dict):
                    yield f"{base}.{key}[{i}]", container


def effective_security(pod: PodTemplate, container: dict[str, Any], key: str) -> tuple[Any, str]:
    """A securityContext field as the kubelet applies it (container over pod), and where it was set."""
    own = as_dict(container.get("securityContext"))
    if key in own:
        return own[key], "container"
    pod_ctx = as_dict(pod.spec.get("securityContext"))
    if key in pod_ctx:
        return pod_ctx[key], "pod"
    return None, ""


@evaluator
def evaluate_workloads(snapshot: Snapshot) -> Iterator[Finding]:
    """Every per-pod and per-container workload finding."""
    index = rbac_index(snapshot)
    service_accounts = {(o.namespace, o.name): o for o in snapshot.of_kind("ServiceAccount")}
    config_maps: ConfigMaps = {(o.namespace, o.name): as_dict(o.raw.get("data")) for o in snapshot.of_kind("ConfigMap")}
    sa_rights: dict[tuple[str, str], list[str]] = {}
    for pod in snapshot.pod_templates():
        yield from pod_findings(pod)
        for path, container in indexed_containers(pod):
            yield from container_findings(pod, path, container, config_maps)
        key = (pod.namespace, pod.service_account)
        if key not in sa_rights:
            subject = Subject("ServiceAccount", pod.service_account, pod.namespace)
            sa_rights[key] = rights_summary(index, subject)
        finding = token_automount_finding(pod, service_accounts.get(key), sa_rights[key])
        if finding:
            yield finding
    yield from network_policy_findings(snapshot)


def rights_summary(index: Any, subject: Subject) -> list[str]:
    """Names of the API rights a subject holds, dangerous ones first; empty when none."""
    dangerous = rights_names(dangerous_rights(index, subject, inherited=True))
    if dangerous:
        return dangerous
    grants = api_grants(index.grants(subject, inherited=True))
    paths = list(dict.fromkeys(g.path() for g in grants))
    return [f"API rights via {'; '.join(paths[:3])}"] if paths else []


def pod_findings(pod: PodTemplate) -> Iterator[Finding]:
    """Pod-level checks: host namespaces, hostPath volumes and runtime sockets."""
    base = template_path(pod)
    shared = [key for key in ("hostPID", "hostIPC", "hostNetwork") if pod.spec.get(key) is True]
    if shared:
        evidence = ", ".join(f"{base}.{key}: true" for key in shared)
        yield HOST_NAMESPACE.finding(pod.owner, evidence, workload=workload_of(pod))
    mounts = _volume_mounts(pod)
    host_path_lines: list[str] = []
    socket_lines: list[str] = []
    severity = HOST_PATH.severity
    for i, volume in enumerate(as_list(pod.spec.get("volumes"))):
        volume = as_dict(volume)
        host = as_dict(volume.get("hostPath"))
        raw_path = host.get("path")
        path = raw_path.rstrip("/") or "/" if isinstance(raw_path, str) and raw_path else ""
        if not path:
            continue
        name = str(volume.get("name", ""))
        users = mounts.get(name, [])
        where = f"{base}.volumes[{i}].hostPath.path={path}"
        mounted = ", ".join(f"{c} ({'read-only' if ro else 'writable'})" for c, ro in users) or "not mounted"
        if is_runtime_socket(path):
            socket_lines.append(f"{where} mounted by {mounted}")
            continue
        writable = any(not ro for _, ro in users)
        sensitive = _is_sensitive(path)
        if writable or sensitive:
            host_path_lines.append(f"{where} ({'sensitive, ' if sensitive else ''}mounted by {mounted})")
            if writable and sensitive:
                severity = Severity.HIGH
    if host_path_lines:
        yield HOST_PATH.finding(pod.owner, "; ".join(host_path_lines), severity=severity, workload=workload_of(pod))
    if socket_lines:
        yield RUNTIME_SOCKET.finding(pod.owner, "; ".join(socket_lines), workload=workload_of(pod))


def _volume_mounts(pod: PodTemplate) -> dict[str, list[tuple[str, bool]]]:
    """Volume name -> [(container name, mounted read-only)]."""
    out: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for container in pod.containers():
        for mount in dicts(container.get("volumeMounts")):
            out[str(mount.get("name", ""))].append((str(container.get("name", "")), mount.get("readOnly") is True))
    return out


def _is_sensitive(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in SENSITIVE_HOST_PATHS)


def container_findings(pod: PodTemplate, path: str, container: dict[str, Any],
                       config_maps: ConfigMaps | None = None) -> Iterator[Finding]:
    """Container-level checks, each naming the container and the field path."""
    name = str(container.get("name", ""))
    workload = workload_of(pod, container)
    resource = Resource(pod.owner.kind, workload.pod, workload.namespace)
    ctx = f"{path}.securityContext"

    def found(check: PostureCheck, evidence: str, severity: Severity | None = None) -> Finding:
        return check.finding(resource, f"container {name}: {evidence}", severity=severity, workload=workload,
                             source=pod.owner.source)

    privileged = is_privileged(container)
    if privileged:
        yield found(PRIVILEGED, f"{ctx}.privileged: true")
    caps = added_capabilities(container)
    bad = sorted(caps & DANGEROUS_CAPABILITIES)
    if bad:
        severity = Severity.CRITICAL if caps & CRITICAL_CAPABILITIES else None
        yield found(DANGEROUS_CAPABILITY, f"{ctx}.capabilities.add: {', '.join(bad)}", severity)
    escalation = security_context(container).get("allowPrivilegeEscalation")
    if escalation is not False or privileged or "SYS_ADMIN" in caps:
        why = "true" if escalation is True else "not set (defaults to true)"
        if escalation is False:
            why = "false but overridden by privileged/SYS_ADMIN"
        yield found(PRIVILEGE_ESCALATION, f"{ctx}.allowPrivilegeEscalation {why}")
    root = _root_evidence(pod, container, ctx)
    if root:
        yield found(RUN_AS_ROOT, root, Severity.HIGH if root.endswith("runAsUser: 0") else None)
    if security_context(container).get("readOnlyRootFilesystem") is not True:
        yield found(WRITABLE_ROOT_FS, f"{ctx}.readOnlyRootFilesystem not true")
    limits = as_dict(as_dict(container.get("resources")).get("limits"))
    missing = [r for r in ("cpu", "memory") if not limits.get(r)]
    if missing and "ephemeralContainers" not in path:
        yield found(NO_RESOURCE_LIMITS, f"{path}.resources.limits has no {' and no '.join(missing)}")
    yield from _secret_findings(pod, path, container, found, config_maps or {})
    image = str(container.get("image", ""))
    if image and not image_pinned(image):
        yield found(IMAGE_UNPINNED, f"{path}.image: {image}")


def _root_evidence(pod: PodTemplate, container: dict[str, Any], ctx: str) -> str:
    """Why the container may run as root, or '' when it cannot."""
    user, user_at = effective_security(pod, container, "runAsUser")
    non_root, _ = effective_security(pod, container, "runAsNonRoot")
    if user == 0:
        where = ctx if user_at == "container" else f"{template_path(pod)}.securityContext"
        return f"{where}.runAsUser: 0"
    if non_root is True or (isinstance(user, int) and user > 0):
        return ""
    return f"{ctx}: no runAsNonRoot: true and no non-zero runAsUser (container or pod)"


def _secret_findings(pod: PodTemplate, path: str, container: dict[str, Any], found: Any,
                     config_maps: ConfigMaps) -> Iterator[Finding]:
    """secret-in-env: literal values, and ConfigMap entries the container takes into its environment."""
    hits: list[tuple[str, str, str, str | None]] = []  # (field path, variable, value, ConfigMap origin)
    for i, env in enumerate(dicts(container.get("env"))):
        var = str(env.get("name", ""))
        if "value" in env:
            hits.append((f"{path}.env[{i}]", var, str(env.get("value") or ""), None))
            continue
        ref = as_dict(as_dict(env.get("valueFrom")).get("configMapKeyRef"))
        data = config_maps.get((pod.namespace, str(ref.get("name", ""))), {})
        key = str(ref.get("key", ""))
        if key in data:
            hits.append((f"{path}.env[{i}]", var, str(data[key]), f"ConfigMap/{ref.get('name')} key {key}"))
    for i, env_from in enumerate(dicts(container.get("envFrom"))):
        name = str(as_dict(env_from.get("configMapRef")).get("name", ""))
        prefix = str(env_from.get("prefix") or "")
        for key, value in config_maps.get((pod.namespace, name), {}).items():
            hits.append((f"{path}.envFrom[{i}]", prefix + str(key), str(value), f"ConfigMap/{name} key {key}"))
    lines: list[str] = []
    cloud = False
    for where, var, value, origin in hits:
        match = find_secret(var, value)
        if match:
            cloud = cloud or match.cloud
            source = f" from {origin}" if origin else ""
            lines.append(f"{where} {var}{source} = {match.masked} ({match.kind})")
    if lines:
        yield found(SECRET_IN_ENV, "; ".join(lines), Severity.CRITICAL if cloud else None)


def image_pinned(image: str) -> bool:
    """True for a digest or a tag other than latest."""
    if "@sha256:" in image or "@sha512:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def token_automount_finding(pod: PodTemplate, sa: K8sObject | None, rights: list[str]) -> Finding | None:
    """sa-token-automount when the pod gets a token of a service account that can do something."""
    if not rights:
        return None
    pod_setting = pod.spec.get("automountServiceAccountToken")
    sa_setting = sa.raw.get("automountServiceAccountToken") if sa else None
    if pod_setting is False or (pod_setting is None and sa_setting is False):
        return None
    where = f"{template_path(pod)}.automountServiceAccountToken" + (
        ": true" if pod_setting is True else " not set" + (" (service account: true)" if sa_setting else ""))
    dangerous = not rights[0].startswith("API rights")
    severity = Severity.HIGH if dangerous else None
    if "rbac-cluster-admin" in rights:
        severity = Severity.CRITICAL
    evidence = f"{where}; ServiceAccount {pod.namespace}/{pod.service_account} holds {', '.join(rights)}"
    return SA_TOKEN_AUTOMOUNT.finding(pod.owner, evidence, severity=severity, workload=workload_of(pod))


def network_policy_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """missing-network-policy: per namespace, the pods no NetworkPolicy selects (decided by the evaluator)."""
    netpol = NetpolEvaluator(snapshot)
    policies: dict[str, int] = defaultdict(int)
    for policy in netpol.policies:
        policies[policy.namespace] += 1
    unselected: dict[str, list[PodTemplate]] = defaultdict(list)
    for pod in snapshot.pod_templates():
        if pod.spec.get("hostNetwork") is True:
            continue  # NetworkPolicy does not apply to host-network pods
        if not netpol.selecting(Endpoint.of_template(pod)):
            unselected[pod.namespace].append(pod)
    namespaces = {o.name: o for o in snapshot.of_kind("Namespace")}
    for namespace in sorted(unselected):
        pods = unselected[namespace]
        names = ", ".join(f"{p.owner.kind}/{p.owner.name}" for p in pods[:5])
        more = f" and {len(pods) - 5} more" if len(pods) > 5 else ""
        have = policies.get(namespace, 0)
        evidence = f"{len(pods)} workload(s) selected by none of the namespace's {have} NetworkPolicies: {names}{more}"
        ns_obj = namespaces.get(namespace)
        resource: Resource | K8sObject = ns_obj or Resource("Namespace", namespace)
        source = ns_obj.source if ns_obj else pods[0].owner.source
        yield MISSING_NETWORK_POLICY.finding(resource, evidence, source=source)
