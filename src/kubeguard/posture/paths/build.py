"""Build the attack graph from a Snapshot (and, optionally, the scan's findings).

One pass per family: endpoints and consoles (entry), RBAC rights of every binding (Kubernetes
API), container escapes, nodes and the tokens on them, cloud credentials and the metadata API,
and compute hijack. RBAC is resolved once by `kubeguard.posture.rbac.RbacIndex`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeguard.cluster.selectors import PodLabelIndex
from kubeguard.cluster.snapshot import K8sObject, PodTemplate, Snapshot
from kubeguard.model import Finding
from kubeguard.net.netpol import NetpolEvaluator
from kubeguard.posture.exposure import CONSOLES, identity_text
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.graph import (
    ANY_NODE,
    CLOUD_DATA,
    CLUSTER_ADMIN,
    COMPUTE_HIJACK,
    INTERNET,
    METADATA_API,
    NODE_ROOT,
    AttackGraph,
)
from kubeguard.posture.podsecurity import covers, has_capability, is_privileged, reaches_runtime_socket
from kubeguard.posture.rbac import Grant, RbacIndex, Subject
from kubeguard.posture.rbac_checks import rbac_index
from kubeguard.redact import mask_key_id

# Controllers whose create/patch right is a pod create/patch right: (resource, API group).
WORKLOAD_KINDS = (("deployments", "apps"), ("daemonsets", "apps"), ("statefulsets", "apps"), ("replicasets", "apps"),
                  ("jobs", "batch"), ("cronjobs", "batch"), ("replicationcontrollers", ""))
NODE_ROLE = "cloud:node-instance-role"


@dataclass(slots=True)
class PodInfo:
    """One pod template in the graph, with the facts the families share."""

    node: str
    template: PodTemplate
    containers: list[tuple[str, dict[str, Any]]]  # (graph node, container spec)
    sa_node: str
    token: bool
    placement: list[str]  # graph node ids of the nodes it may run on


@dataclass(slots=True)
class _Builder:
    snapshot: Snapshot
    index: cond.FindingIndex
    graph: AttackGraph = field(default_factory=AttackGraph)
    rbac: RbacIndex | None = None
    pods: list[PodInfo] = field(default_factory=list)
    pods_by_ns: dict[str, list[PodInfo]] = field(default_factory=lambda: defaultdict(list))
    secrets_by_ns: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sas_by_ns: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ns_admin_done: set[str] = field(default_factory=set)

    # ----- nodes -------------------------------------------------------------------------------
    def pod_node(self, owner: K8sObject) -> str:
        return f"pod:{owner.namespace}/{owner.name}"

    def sa_node(self, namespace: str, name: str) -> str:
        node = f"sa:{namespace}/{name}"
        self.sas_by_ns[namespace].add(node)
        return self.graph.add_node(node, "identity", f"ServiceAccount {namespace}/{name}")

    def subject_node(self, subject: Subject) -> str:
        if subject.kind == "ServiceAccount":
            return self.sa_node(subject.namespace, subject.name)
        kind = subject.kind.lower()
        return self.graph.add_node(f"{kind}:{subject.name}", "identity", f"{subject.kind} {subject.name}")

    def host_node(self, name: str) -> str:
        if name == "*":
            node = self.graph.add_node(ANY_NODE, "node", "any node (pods without placement)")
        else:
            node = self.graph.add_node(f"node:{name}", "node", f"Node {name}")
        self.graph.add_edge(node, NODE_ROOT, "ROOT_ON_NODE", f"root on {self.graph.label(node)}")
        return node

    def tokens_node(self, host: str) -> str:
        name = host.removeprefix("node:")
        node = self.graph.add_node(f"tokens:{name}", "secret", f"pod tokens under /var/lib/kubelet/pods on {name}")
        self.graph.add_edge(host, node, "NODE_TOKENS", f"root on {self.graph.label(host)} reads /var/lib/kubelet/pods")
        return node

    # ----- build -------------------------------------------------------------------------------
    def build(self) -> AttackGraph:
        g = self.graph
        g.add_node(INTERNET, "internet", "Internet")
        for target, label in ((CLUSTER_ADMIN, "cluster-admin"), (NODE_ROOT, "root on a node"),
                              (CLOUD_DATA, "cloud data"), (COMPUTE_HIJACK, "compute hijack (miner)")):
            g.add_node(target, "target", label)
        self.rbac = rbac_index(self.snapshot)
        self._pods()
        self._secrets()
        self._endpoints()
        self._rbac()
        self._escapes()
        self._cloud()
        self._hijack()
        g.add_edge(CLUSTER_ADMIN, self.host_node("*"), "POD_CREATE",
                   "cluster-admin creates a privileged pod that mounts the host")
        for namespace in sorted(self.snapshot.namespaces()):
            g.add_edge(CLUSTER_ADMIN, self._ns_admin(namespace), "ADMIN_OF", f"every right in namespace {namespace}")
        return g

    def _pods(self) -> None:
        nodes = self.snapshot.of_kind("Node")
        service_accounts = {(o.namespace, o.name): o for o in self.snapshot.of_kind("ServiceAccount")}
        for obj in nodes:
            self.host_node(obj.name)
        for template in self.snapshot.pod_templates():
            owner = template.owner
            node = self.graph.add_node(self.pod_node(owner), "pod", f"{owner.kind} {owner.namespace}/{owner.name}",
                                       namespace=owner.namespace)
            placement = wl.node_placement(template, nodes)
            hosts = [self.host_node(n) for n in placement] if placement is not None else [self.host_node("*")]
            sa = self.sa_node(template.namespace, template.service_account)
            token = wl.token_mounted(template, service_accounts)
            containers = []
            for spec in template.containers():
                name = str(spec.get("name", "?"))
                ctr = self.graph.add_node(f"ctr:{owner.namespace}/{owner.name}/{name}", "container",
                                          f"container {name} of {owner.namespace}/{owner.name}",
                                          image=str(spec.get("image", "")))
                self.graph.add_edge(node, ctr, "CONTAINER_ATTACH", f"container {name} runs in the pod")
                containers.append((ctr, spec))
            info = PodInfo(node, template, containers, sa, token, hosts)
            self.pods.append(info)
            self.pods_by_ns[owner.namespace].append(info)
            mounted = self.index.condition(cond.TOKEN_MOUNTED, owner, f"token of {self.graph.label(sa)} is mounted")
            for host in hosts:
                self.graph.add_edge(host, node, "NODE_PODS", f"runs on {self.graph.label(host)}")
                if token:
                    self.graph.add_edge(self.tokens_node(host), sa, "SECRET_TOKEN",
                                        f"token of {owner.namespace}/{owner.name} on {self.graph.label(host)}")
            if token:
                for ctr, _spec in containers:
                    self.graph.add_edge(ctr, sa, "TOKEN_STEAL",
                                        "/var/run/secrets/kubernetes.io/serviceaccount/token is mounted",
                                        [mounted])

    def _secrets(self) -> None:
        for secret in self.snapshot.of_kind("Secret"):
            node = self.graph.add_node(f"secret:{secret.namespace}/{secret.name}", "secret",
                                       f"Secret {secret.namespace}/{secret.name}")
            self.secrets_by_ns[secret.namespace].append(node)
            if secret.raw.get("type") == "kubernetes.io/service-account-token":
                sa_name = secret.annotations.get("kubernetes.io/service-account.name")
                if sa_name:
                    self.graph.add_edge(node, self.sa_node(secret.namespace, sa_name), "SECRET_TOKEN",
                                        "service-account token secret")
            keys = wl.secret_cloud_keys(secret)
            if keys:
                identity = self._cloud_identity(f"secret:{secret.namespace}/{secret.name}",
                                                f"cloud keys in Secret {secret.namespace}/{secret.name}")
                finding = self.index.condition(cond.CLOUD_KEYS, secret,
                                               f"Secret holds cloud credentials in keys {', '.join(keys)}")
                self.graph.add_edge(node, identity, "CLOUD_CREDS", f"keys {', '.join(keys)}", [finding])
        for info in self.pods:
            for ctr, spec in info.containers:
                for name, how in wl.secret_refs(info.template, spec).items():
                    secret_node = f"secret:{info.template.namespace}/{name}"
                    if secret_node not in self.graph.g:
                        continue
                    self.graph.add_edge(ctr, secret_node, "SECRET_MOUNT", how)

    # ----- entry -------------------------------------------------------------------------------
    def _endpoints(self) -> None:
        services: dict[tuple[str, str], str] = {}
        by_template = {id(info.template): info for info in self.pods}
        selector_index = PodLabelIndex(info.template for info in self.pods)
        for svc in self.snapshot.of_kind("Service"):
            spec = svc.spec
            kind = str(spec.get("type") or "ClusterIP")
            exposure = {"LoadBalancer": "external", "NodePort": "node"}.get(kind, "cluster")
            if spec.get("externalIPs"):
                exposure = "external"
            if kind == "ExternalName":
                continue
            ports = ",".join(str(p.get("port")) for p in spec.get("ports") or [] if isinstance(p, dict))
            node = self.graph.add_node(f"endpoint:{svc.namespace}/{svc.name}", "endpoint",
                                       f"Service {svc.namespace}/{svc.name} ({kind} :{ports})", exposure=exposure)
            services[(svc.namespace, svc.name)] = node
            if exposure != "cluster":
                where = "a load balancer" if exposure == "external" else f"port(s) {ports} on every node"
                finding = self.index.condition(cond.EXPOSED_ENDPOINT, svc, f"{kind} Service reachable on {where}")
                self.graph.add_edge(INTERNET, node, "EXPOSED", f"{kind} Service: reachable on {where}", [finding])
            for template in selector_index.select(svc.namespace, spec.get("selector")):
                self._behind_endpoint(node, by_template[id(template)])
        for ingress in self.snapshot.of_kind("Ingress"):
            node = self.graph.add_node(f"endpoint:{ingress.namespace}/ingress/{ingress.name}", "endpoint",
                                       f"Ingress {ingress.namespace}/{ingress.name}", exposure="external")
            hosts = [str(r.get("host")) for r in ingress.spec.get("rules") or []
                     if isinstance(r, dict) and r.get("host")]
            finding = self.index.condition(cond.EXPOSED_ENDPOINT, ingress,
                                           f"Ingress routes {', '.join(hosts) or 'any host'} from outside")
            self.graph.add_edge(INTERNET, node, "EXPOSED", f"Ingress for {', '.join(hosts) or 'any host'}", [finding])
            for backend in _ingress_backends(ingress.spec):
                target = services.get((ingress.namespace, backend))
                if target:
                    self.graph.add_edge(node, target, "EXPOSED", f"Ingress routes to Service {backend}")
                    self.graph.g.nodes[target]["exposure"] = "external"

    def _behind_endpoint(self, endpoint: str, info: PodInfo) -> None:
        owner = info.template.owner
        self.graph.add_edge(endpoint, info.node, "ENDPOINT_EXPLOIT",
                            f"selects the pods of {owner.kind} {owner.namespace}/{owner.name}")
        for _ctr, spec in info.containers:
            console = unauthenticated_console(spec)
            if console and info.token:
                findings = [self.index.condition(cond.UNAUTH_CONSOLE, owner, f"{console} (image {spec.get('image')})",
                                                 str(spec.get("name"))),
                            self.index.condition(cond.TOKEN_MOUNTED, owner,
                                                 f"token of {self.graph.label(info.sa_node)} is mounted")]
                self.graph.add_edge(endpoint, info.sa_node, "UNAUTH_CONSOLE",
                                    f"{console}; it acts as {self.graph.label(info.sa_node)}", findings)

    # ----- Kubernetes API ---------------------------------------------------------------------------
    def _rbac(self) -> None:
        assert self.rbac is not None
        by_binding: dict[tuple[str, str, str], list[Grant]] = defaultdict(list)
        holders: dict[tuple[str, str, str], set[Subject]] = defaultdict(set)
        for subject in self.rbac.subjects():
            for grant in self.rbac.grants(subject, inherited=False):
                key = grant.binding.key
                holders[key].add(subject)
                if all(g.rule != grant.rule for g in by_binding[key]):
                    by_binding[key].append(grant)
        groups_with_rights: set[Subject] = set()
        for key, grants in by_binding.items():
            binding = grants[0].binding
            rights = rights_of(grants, grants[0].scope)
            if not rights:
                continue
            node = self.graph.add_node(f"perms:{binding.kind}/{binding.namespace}/{binding.name}", "permissions",
                                       f"{binding.kind} {_qualified(binding)} -> {grants[0].role.kind} "
                                       f"{grants[0].role.name}")
            self._right_edges(node, rights, grants[0].scope)
            summary = "; ".join(sorted({r.evidence for r in rights}))
            finding = self.index.condition(cond.RBAC_GRANT, binding, summary[:300])
            for subject in sorted(holders[key]):
                self.graph.add_edge(self.subject_node(subject), node, "HAS_PERMISSIONS",
                                    f"bound by {binding.kind} {_qualified(binding)}: {summary[:200]}", [finding])
                if subject.kind == "Group":
                    groups_with_rights.add(subject)
        if groups_with_rights:
            for info in self.pods:
                self._sa_groups(info.sa_node, groups_with_rights)
            for sa in {n for nodes in self.sas_by_ns.values() for n in nodes}:
                self._sa_groups(sa, groups_with_rights)

    def _sa_groups(self, sa_node: str, groups: set[Subject]) -> None:
        namespace, name = sa_node.removeprefix("sa:").split("/", 1)
        for group in Subject("ServiceAccount", name, namespace).groups():
            if group in groups:
                self.graph.add_edge(sa_node, self.subject_node(group), "HAS_PERMISSIONS", f"member of {group.name}")

    def _ns_admin(self, namespace: str) -> str:
        node = self.graph.add_node(f"perms:ns-admin/{namespace}", "permissions", f"admin of namespace {namespace}")
        if namespace not in self.ns_admin_done:
            self.ns_admin_done.add(namespace)
            self._right_edges(node, NAMESPACE_ADMIN_RIGHTS, namespace)
        return node

    def _right_edges(self, node: str, rights: Iterable[Right], scope: str) -> None:
        """Edges from a permission set to what each of its rights reaches within `scope`."""
        namespaces = [scope] if scope else sorted(self.snapshot.namespaces())
        for right in rights:
            evidence = right.evidence
            if right.name == "ADMIN":
                if scope:
                    self.graph.add_edge(node, self._ns_admin(scope), "ADMIN_OF", f"all rights in {scope}: {evidence}")
                else:
                    self.graph.add_edge(node, CLUSTER_ADMIN, "ADMIN_OF", f"all rights cluster-wide: {evidence}")
            elif right.name in ("ROLE_BIND", "ESCALATE", "IMPERSONATE") and right.cluster_admin:
                self.graph.add_edge(node, CLUSTER_ADMIN, right.name, evidence)
            elif right.name in ("ROLE_BIND", "ESCALATE"):
                for ns in namespaces:
                    self.graph.add_edge(node, self._ns_admin(ns), right.name, evidence)
            elif right.name in ("POD_EXEC", "POD_ATTACH", "POD_PATCH", "NODES_PROXY"):
                for ns in namespaces:
                    for info in self.pods_by_ns.get(ns, []):
                        self.graph.add_edge(node, info.node, right.name, evidence)
            elif right.name == "TOKEN_LIST":
                for ns in namespaces:
                    for secret in self.secrets_by_ns.get(ns, []):
                        self.graph.add_edge(node, secret, "TOKEN_LIST", evidence)
            elif right.name in ("TOKEN_CREATE", "IMPERSONATE"):
                for ns in namespaces:
                    for sa in sorted(self.sas_by_ns.get(ns, ())):
                        self.graph.add_edge(node, sa, right.name, evidence)
            elif right.name == "POD_CREATE":
                self._pod_create(node, namespaces, evidence)

    def _pod_create(self, node: str, namespaces: list[str], evidence: str) -> None:
        ns_objects = {o.name: o for o in self.snapshot.of_kind("Namespace")}
        for ns in namespaces:
            for sa in sorted(self.sas_by_ns.get(ns, ())):
                self.graph.add_edge(node, sa, "POD_CREATE", f"{evidence}: a pod running as {self.graph.label(sa)}")
            if not wl.namespace_psa_blocks_privileged(ns_objects.get(ns)):
                self.graph.add_edge(node, self.host_node("*"), "POD_CREATE",
                                    f"{evidence}: a privileged hostPID pod in {ns} (no Pod Security enforce)")
            if not self._bounded_namespace(ns):
                self.graph.add_edge(node, COMPUTE_HIJACK, "RESOURCE_HIJACK",
                                    f"{evidence}: pods in {ns}, which has no ResourceQuota or LimitRange")

    # ----- escapes -----------------------------------------------------------------------------
    def _escapes(self) -> None:
        for info in self.pods:
            owner = info.template.owner
            host_pid = info.template.spec.get("hostPID") is True
            for ctr, spec in info.containers:
                steps: list[tuple[str, str, list[Finding]]] = []
                name = spec.get("name")
                priv = self.index.condition(cond.PRIVILEGED, owner, f"container {name} is privileged", str(name))
                pid = self.index.condition(cond.HOST_PID, owner, "hostPID: true")
                if is_privileged(spec):
                    steps.append(("CE_PRIV_MOUNT", f"container {name} is privileged", [priv]))
                    if host_pid:
                        steps.append(("CE_NSENTER", f"container {name} is privileged and the pod has hostPID", [
                            priv, pid]))
                for cap, kind in (("SYS_PTRACE", "CE_SYS_PTRACE"), ("SYS_MODULE", "CE_MODULE_LOAD")):
                    if has_capability(spec, cap) and (host_pid or kind == "CE_MODULE_LOAD"):
                        finding = self.index.condition(cond.CAPABILITY, owner, f"container {name} adds {cap}",
                                                       str(name))
                        extra = [pid] if kind == "CE_SYS_PTRACE" else []
                        steps.append((kind, f"container {name} adds {cap}" + (" with hostPID" if extra else ""),
                                      [finding, *extra]))
                for mount in wl.host_mounts(info.template, spec):
                    steps.extend(self._host_path_steps(info, owner, mount))
                for kind, evidence, findings in steps:
                    target_hosts = info.placement
                    for host in target_hosts:
                        if kind == "EXPLOIT_HOST_READ":
                            self.graph.add_edge(ctr, self.tokens_node(host), kind, evidence, findings)
                        else:
                            self.graph.add_edge(ctr, host, kind, evidence, findings)

    def _host_path_steps(self, info: PodInfo, owner: K8sObject,
                         mount: wl.HostMount) -> list[tuple[str, str, list[Finding]]]:
        access = "read-write" if mount.writable else "read-only"
        finding = self.index.condition(cond.HOST_PATH, owner, f"hostPath {mount.path} mounted {access}",
                                       scan_checks=("host-path",))
        where = f"hostPath {mount.path} ({access})"
        steps: list[tuple[str, str, list[Finding]]] = []
        if reaches_runtime_socket(mount.path):
            socket = self.index.condition(cond.HOST_PATH, owner, f"hostPath {mount.path}: runtime socket",
                                          scan_checks=("runtime-socket", "host-path"))
            steps.append(("EXPLOIT_RUNTIME_SOCK", f"{where} exposes the container runtime socket", [socket]))
        if mount.writable and covers(mount.path, "/proc/sys/kernel/core_pattern"):
            steps.append(("CE_UMH_CORE_PATTERN", f"{where}: /proc/sys/kernel/core_pattern is writable", [finding]))
        if mount.writable and any(covers(mount.path, s) or (s != "/" and covers(s, mount.path))
                                  for s in wl.WRITE_SENSITIVE):
            steps.append(("EXPLOIT_HOST_WRITE", f"{where} is a sensitive host path", [finding]))
        if covers(mount.path, wl.KUBELET_PODS):
            steps.append(("EXPLOIT_HOST_READ", f"{where} holds every pod's token under {wl.KUBELET_PODS}", [finding]))
        if mount.writable and covers(mount.path, wl.VAR_LOG) and self.rbac is not None:
            namespace, name = info.sa_node.removeprefix("sa:").split("/", 1)
            grants = self.rbac.allows(Subject("ServiceAccount", name, namespace), "get", "pods",
                                      namespace=namespace, subresource="log")
            if grants:
                steps.append(("CE_VAR_LOG_SYMLINK", f"{where} and the pod's identity may read pods/log "
                              f"({grants[0].describe()})", [finding]))
        return steps

    # ----- cloud -------------------------------------------------------------------------------
    def _cloud_identity(self, key: str, label: str) -> str:
        node = self.graph.add_node(f"cloud:{key}", "cloud-identity", label)
        self.graph.add_edge(node, CLOUD_DATA, "CLOUD_ACCESS", f"{label}: cloud storage and APIs the identity may use")
        return node

    def _cloud(self) -> None:
        service_accounts = {(o.namespace, o.name): o for o in self.snapshot.of_kind("ServiceAccount")}
        metadata_added = False
        netpol = NetpolEvaluator(self.snapshot)
        for info in self.pods:
            owner = info.template.owner
            sa_obj = service_accounts.get((owner.namespace, info.template.service_account))
            identity = workload_identity(sa_obj, info.template) if sa_obj is not None else None
            blocker = wl.egress_blocks_metadata(info.template, netpol)
            host_network = info.template.spec.get("hostNetwork") is True
            for ctr, spec in info.containers:
                names = wl.literal_cloud_env(spec)
                if names:
                    key_id = wl.literal_aws_key_id(spec)
                    label = (f"AWS key {mask_key_id(key_id)}" if key_id
                             else f"cloud keys in env of {owner.namespace}/{owner.name}")
                    node = self._cloud_identity(f"aws-key:{mask_key_id(key_id)}" if key_id else f"env:{ctr[4:]}", label)
                    finding = self.index.condition(
                        cond.CLOUD_KEYS, owner,
                        f"container {spec.get('name')} has cloud keys in env {', '.join(names)}",
                        str(spec.get("name")))
                    self.graph.add_edge(ctr, node, "CLOUD_CREDS", f"env {', '.join(names)} (values masked)", [finding])
                if identity is not None and sa_obj is not None:
                    provider, value = identity
                    node = self._cloud_identity(f"{provider}:{value}", f"{provider} identity {value}")
                    finding = self.index.condition(cond.WORKLOAD_IDENTITY, sa_obj,
                                                   f"{provider} workload identity {value}")
                    self.graph.add_edge(ctr, node, "CLOUD_CREDS",
                                        f"runs as {self.graph.label(info.sa_node)}, bound to {provider} {value}",
                                        [finding])
                if host_network or blocker is None:
                    if not metadata_added:
                        self.graph.add_node(METADATA_API, "cloud-identity", "cloud metadata API 169.254.169.254")
                        role = self._cloud_identity("node-instance-role", "the nodes' cloud instance role")
                        self.graph.add_edge(METADATA_API, role, "NODE_ROLE",
                                            "GET /latest/meta-data/iam/security-credentials/ (or GCP/Azure equivalent)")
                        metadata_added = True
                    why = "hostNetwork: true" if host_network else "no egress NetworkPolicy blocks 169.254.169.254"
                    finding = self.index.condition(cond.METADATA_REACHABLE, owner, why)
                    self.graph.add_edge(ctr, METADATA_API, "METADATA_API", why, [finding])
        if metadata_added:
            for host in [n for n, d in self.graph.g.nodes(data=True) if d.get("kind") == "node"]:
                self.graph.add_edge(host, METADATA_API, "METADATA_API", "root on the node reaches the metadata API")

    # ----- impact ------------------------------------------------------------------------------
    def _bounded_namespace(self, namespace: str) -> bool:
        return any(o.namespace == namespace for o in self.snapshot.of_kind("ResourceQuota", "LimitRange"))

    def _hijack(self) -> None:
        limit_defaults = {o.namespace for o in self.snapshot.of_kind("LimitRange") if _limit_range_cpu(o)}
        quotas = {o.namespace for o in self.snapshot.of_kind("ResourceQuota")}
        for info in self.pods:
            ns = info.template.namespace
            if ns in quotas:
                continue
            for ctr, spec in info.containers:
                if wl.has_cpu_limit(spec) or ns in limit_defaults:
                    continue
                owner = info.template.owner
                finding = self.index.condition(cond.NO_LIMITS, owner,
                                               f"container {spec.get('name')} has no CPU limit; {ns} has no quota",
                                               str(spec.get("name")))
                self.graph.add_edge(ctr, COMPUTE_HIJACK, "RESOURCE_HIJACK",
                                    f"no CPU limit on {spec.get('name')} and no ResourceQuota in {ns}", [finding])


# ----- rights of a permission set ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Right:
    """One dangerous right a permission set holds: the edge kind it makes and its evidence."""

    name: str
    evidence: str
    cluster_admin: bool = False


def _allowed(grants: list[Grant], verbs: Iterable[str], resource: str, group: str = "",
             subresource: str | None = None) -> Grant | None:
    for grant in grants:
        for verb in verbs:
            if grant.rule.allows(verb, resource, group, subresource):
                return grant
    return None


def rights_of(grants: list[Grant], scope: str) -> list[Right]:
    """The dangerous rights among a binding's grants (one per kind, with the rule as evidence)."""
    out: list[Right] = []

    def add(name: str, grant: Grant | None, what: str, cluster_admin: bool = False) -> None:
        if grant is not None:
            out.append(Right(name, f"{what} ({grant.rule})", cluster_admin))

    wildcard = next((g for g in grants if g.rule.is_full_wildcard), None)
    add("ADMIN", wildcard, "every verb on every resource")
    if wildcard is not None:
        return out
    add("POD_EXEC", _allowed(grants, ("create", "get"), "pods", subresource="exec"), "pods/exec")
    add("POD_ATTACH", _allowed(grants, ("create", "get"), "pods", subresource="attach"), "pods/attach")
    create = _allowed(grants, ("create",), "pods") or next(
        (g for resource, group in WORKLOAD_KINDS if (g := _allowed(grants, ("create",), resource, group))), None)
    add("POD_CREATE", create, "create pods or workloads")
    patch = _allowed(grants, ("patch", "update"), "pods") or next(
        (g for resource, group in WORKLOAD_KINDS if (g := _allowed(grants, ("patch", "update"), resource, group))),
        None)
    add("POD_PATCH", patch, "patch pods or workloads")
    add("TOKEN_LIST", _allowed(grants, ("get", "list", "watch"), "secrets"), "read secrets")
    add("TOKEN_CREATE", _allowed(grants, ("create",), "serviceaccounts", subresource="token"),
        "create serviceaccounts/token")
    rbac_group = "rbac.authorization.k8s.io"
    for kind in ("ClusterRole", "Role"):
        binding_res = "clusterrolebindings" if kind == "ClusterRole" else "rolebindings"
        role_res = binding_res.replace("bindings", "s")
        bind = _allowed(grants, ("create", "update", "patch"), binding_res, rbac_group)
        verb = _allowed(grants, ("bind",), role_res, rbac_group)
        if bind is not None and verb is not None:
            add("ROLE_BIND", verb, f"create {binding_res} and bind {role_res}",
                cluster_admin=kind == "ClusterRole" and not scope)
            break
    for role_res in ("clusterroles", "roles"):
        esc = _allowed(grants, ("escalate",), role_res, rbac_group)
        edit = _allowed(grants, ("update", "patch", "create"), role_res, rbac_group)
        if esc is not None and edit is not None:
            add("ESCALATE", esc, f"escalate and edit {role_res}",
                cluster_admin=role_res == "clusterroles" and not scope)
            break
    users = _allowed(grants, ("impersonate",), "users") or _allowed(grants, ("impersonate",), "groups")
    if users is not None and not scope:
        add("IMPERSONATE", users, "impersonate users or groups (system:masters)", cluster_admin=True)
    else:
        add("IMPERSONATE", _allowed(grants, ("impersonate",), "serviceaccounts"), "impersonate service accounts")
    if not scope:
        add("NODES_PROXY", _allowed(grants, ("get", "create"), "nodes", subresource="proxy"), "nodes/proxy")
    return out


NAMESPACE_ADMIN_RIGHTS = tuple(
    Right(name, "namespace admin") for name in ("POD_EXEC", "POD_CREATE", "TOKEN_LIST", "TOKEN_CREATE"))

def unauthenticated_console(container: dict[str, Any]) -> str | None:
    """What makes the container a console serving without login (the scan's console table), or None."""
    text = identity_text(container)
    for console in CONSOLES:
        if console.pattern.search(text):
            why = console.auth_off(container)
            if why:
                return f"{console.name}: {why}"
    return None


def workload_identity(sa: K8sObject, pod: PodTemplate) -> tuple[str, str] | None:
    """(provider, identity) a pod gets from its service account's cloud annotations."""
    annotations = sa.annotations
    if annotations.get(wl.IRSA_ANNOTATION):
        return "aws-role", str(annotations[wl.IRSA_ANNOTATION])
    if annotations.get(wl.GKE_ANNOTATION):
        return "gcp-sa", str(annotations[wl.GKE_ANNOTATION])
    if annotations.get(wl.AZURE_ANNOTATION) and pod.labels.get(wl.AZURE_POD_LABEL) == "true":
        return "azure-identity", str(annotations[wl.AZURE_ANNOTATION])
    return None


def _ingress_backends(spec: dict[str, Any]) -> list[str]:
    names: list[str] = []
    default = spec.get("defaultBackend") or spec.get("backend")
    paths = [default] if isinstance(default, dict) else []
    for rule in spec.get("rules") or []:
        http = rule.get("http") if isinstance(rule, dict) else None
        for path in (http or {}).get("paths") or []:
            if isinstance(path, dict) and isinstance(path.get("backend"), dict):
                paths.append(path["backend"])
    for backend in paths:
        service = backend.get("service")
        if isinstance(service, dict) and service.get("name"):
            names.append(str(service["name"]))
        elif backend.get("serviceName"):
            names.append(str(backend["serviceName"]))
    return names


def _limit_range_cpu(obj: K8sObject) -> bool:
    for limit in obj.spec.get("limits") or []:
        if isinstance(limit, dict) and isinstance(limit.get("default"), dict) and limit["default"].get("cpu"):
            return True
    return False


def _qualified(obj: K8sObject) -> str:
    return f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name


def build_graph(snapshot: Snapshot, findings: list[Finding] | None = None) -> AttackGraph:
    """The attack graph of a snapshot; `findings` from a scan are reused as edge labels."""
    return _Builder(snapshot, cond.FindingIndex(findings)).build()
