"""The rbac-* checks: dangerous rights, per subject (ServiceAccount, User, Group).

Each check is data (`PostureCheck`) plus a list of the requests that make it (`Probe`s); one evaluator
asks the shared `RbacIndex` which of a subject's own grants allow each probe. A subject holding
cluster-admin (everything, cluster-wide) gets `rbac-cluster-admin` only: the narrower rights it
implies are named in that finding's evidence instead of raising ten findings about one binding.
Rights a subject only inherits from a group are reported on the group, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kubeguard.cluster.snapshot import K8sObject, Snapshot
from kubeguard.model import Finding, Resource, Severity
from kubeguard.posture.rbac import (
    ANONYMOUS,
    AUTHENTICATED,
    UNAUTHENTICATED,
    Grant,
    RbacIndex,
    Rule,
    Subject,
)
from kubeguard.posture.registry import PostureCheck, evaluator, register

_INDEX: list[tuple[Snapshot, int, RbacIndex]] = []


def rbac_index(snapshot: Snapshot) -> RbacIndex:
    """The RbacIndex of `snapshot`, built once and shared by every check of one scan."""
    if _INDEX and _INDEX[0][0] is snapshot and _INDEX[0][1] == len(snapshot.objects):
        return _INDEX[0][2]
    index = RbacIndex(snapshot)
    _INDEX[:] = [(snapshot, len(snapshot.objects), index)]
    return index


@dataclass(frozen=True, slots=True)
class Probe:
    """Requests that make a check: any of `verbs` on `group`/`resource[/subresource]`."""

    verbs: tuple[str, ...]
    resource: str
    group: str = ""
    subresource: str | None = None

    def matches(self, rule: Rule) -> bool:
        """Whether `rule` allows one of this probe's requests (on any object)."""
        return any(rule.allows(verb, self.resource, self.group, self.subresource) for verb in self.verbs)

    def grants(self, index: RbacIndex, subject: Subject, inherited: bool = False) -> list[Grant]:
        return index.allows_any(subject, self.verbs, self.resource, None, self.group, self.subresource,
                                inherited=inherited)


RBAC = "rbac"
WRITE = ("create", "update", "patch")

CLUSTER_ADMIN = PostureCheck(
    "rbac-cluster-admin", RBAC, "Subject has cluster-admin rights", Severity.CRITICAL,
    "Bind the subject to a Role with only the verbs and resources it needs; keep cluster-admin for "
    "break-glass humans.",
    ("T1078.003", "MS-TA9019"),
)
SECRETS_READ = PostureCheck(
    "rbac-secrets-read", RBAC, "Subject can read Secrets", Severity.HIGH,
    "Remove get/list/watch on secrets, or restrict it with resourceNames to the Secrets the workload needs.",
    ("T1552.007", "MS-TA9025"),
)
POD_EXEC = PostureCheck(
    "rbac-pod-exec", RBAC, "Subject can exec or attach into pods", Severity.HIGH,
    "Remove create/get on pods/exec and pods/attach and patch on pods/ephemeralcontainers.",
    ("T1609", "MS-TA9006"),
)
POD_CREATE = PostureCheck(
    "rbac-pod-create", RBAC, "Subject can create pods or workload controllers", Severity.HIGH,
    "Limit who may create or patch pods and controllers; enforce Pod Security Admission 'restricted'.",
    ("T1610", "MS-TA9008"),
)
ESCALATE = PostureCheck(
    "rbac-escalate", RBAC, "Subject can escalate its own privileges", Severity.CRITICAL,
    "Remove bind/escalate/impersonate and write access to (Cluster)RoleBindings.",
    ("T1098", "T1078"),
)
NODES_PROXY = PostureCheck(
    "rbac-nodes-proxy", RBAC, "Subject can reach the kubelet API through nodes/proxy", Severity.HIGH,
    "Remove get/create on nodes/proxy: it bypasses admission and audit and allows exec on any pod.",
    ("T1613", "MS-TA9030"),
)
TOKEN_CREATE = PostureCheck(
    "rbac-token-create", RBAC, "Subject can mint service account tokens", Severity.HIGH,
    "Remove create on serviceaccounts/token and on secrets (service-account-token secrets).",
    ("T1528",),
)
CSR_APPROVE = PostureCheck(
    "rbac-csr-approve", RBAC, "Subject can approve certificate signing requests", Severity.HIGH,
    "Remove update/patch on certificatesigningrequests/approval: an approver can issue client certificates.",
    ("T1649",),
)
WEBHOOK_CONTROL = PostureCheck(
    "rbac-webhook-control", RBAC, "Subject can change admission webhooks", Severity.HIGH,
    "Remove write access to mutating/validatingwebhookconfigurations.",
    ("T1546", "MS-TA9015"),
)
WILDCARD = PostureCheck(
    "rbac-wildcard", RBAC, "Subject holds a wildcard rule", Severity.MEDIUM,
    "Replace '*' in verbs and resources by explicit lists: wildcards also grant resources added later.",
    ("T1078",),
)
ANONYMOUS_CHECK = PostureCheck(
    "rbac-anonymous", RBAC, "Anonymous or every authenticated user is granted rights", Severity.CRITICAL,
    "Remove bindings to system:anonymous and system:unauthenticated; never give system:authenticated "
    "more than discovery.",
    ("T1078.001", "MS-TA9005"),
)
DEFAULT_SA = PostureCheck(
    "rbac-default-sa", RBAC, "A namespace's default service account is granted rights", Severity.MEDIUM,
    "Bind rights to a dedicated service account; every pod that names none runs as 'default'.",
    ("T1528", "MS-TA9016"),
)

register(CLUSTER_ADMIN, SECRETS_READ, POD_EXEC, POD_CREATE, ESCALATE, NODES_PROXY, TOKEN_CREATE,
         CSR_APPROVE, WEBHOOK_CONTROL, WILDCARD, ANONYMOUS_CHECK, DEFAULT_SA)

RBAC_GROUP = "rbac.authorization.k8s.io"
CONTROLLERS = (("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
               ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"), ("", "replicationcontrollers"))

# The requests that make each narrower check; order is the order findings are reported in.
PROBES: dict[PostureCheck, tuple[Probe, ...]] = {
    ESCALATE: (
        Probe(("bind", "escalate"), "roles", RBAC_GROUP),
        Probe(("bind", "escalate"), "clusterroles", RBAC_GROUP),
        Probe(WRITE, "rolebindings", RBAC_GROUP),
        Probe(WRITE, "clusterrolebindings", RBAC_GROUP),
        Probe(("impersonate",), "users"),
        Probe(("impersonate",), "groups"),
        Probe(("impersonate",), "serviceaccounts"),
    ),
    SECRETS_READ: (Probe(("get", "list", "watch"), "secrets"),),
    POD_EXEC: (
        Probe(("create", "get"), "pods", subresource="exec"),
        Probe(("create", "get"), "pods", subresource="attach"),
        Probe(("update", "patch"), "pods", subresource="ephemeralcontainers"),
    ),
    POD_CREATE: (Probe(WRITE, "pods"), *(Probe(WRITE, res, grp) for grp, res in CONTROLLERS)),
    NODES_PROXY: (Probe(("get", "create"), "nodes", subresource="proxy"),),
    TOKEN_CREATE: (Probe(("create",), "serviceaccounts", subresource="token"), Probe(("create",), "secrets")),
    CSR_APPROVE: (Probe(("update", "patch"), "certificatesigningrequests", "certificates.k8s.io", "approval"),),
    WEBHOOK_CONTROL: (
        Probe((*WRITE, "delete"), "mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
        Probe((*WRITE, "delete"), "validatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ),
}
# Rights that are harmless for anyone (API discovery, self-review); not counted for rbac-anonymous.
DISCOVERY_RESOURCES = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"})


@evaluator
def evaluate_rbac(snapshot: Snapshot) -> Iterator[Finding]:
    """Every rbac-* finding of the snapshot, per subject."""
    index = rbac_index(snapshot)
    for subject in index.subjects():
        yield from subject_findings(index, subject)


@evaluator
def evaluate_unbound_roles(snapshot: Snapshot) -> Iterator[Finding]:
    """Dangerous Roles and ClusterRoles no binding refers to yet, at low severity, "not bound" in the evidence.

    A pull request adding such a role is seen before anyone is bound to it. Once a binding refers to
    the role, these findings give way to the per-subject findings at the bound severity.
    """
    for role, rules in rbac_index(snapshot).unbound_roles():
        yield from unbound_role_findings(role, rules)


def unbound_role_findings(role: K8sObject, rules: tuple[Rule, ...]) -> Iterator[Finding]:
    """The rbac-* checks a role's rules would make, each a LOW finding on the role itself."""
    admin = [rule for rule in rules if rule.is_full_wildcard]
    matched = {check: [rule for rule in rules if any(probe.matches(rule) for probe in probes)]
               for check, probes in PROBES.items()}
    matched = {check: found for check, found in matched.items() if found}
    resource = Resource(role.kind, role.name, role.namespace)
    if admin:
        implied = ", ".join(check.id for check in matched) or "none"
        yield _unbound(CLUSTER_ADMIN, role, resource, admin, f"; implies {implied}")
        return
    for check, found in matched.items():
        yield _unbound(check, role, resource, found)
    wildcard = [rule for rule in rules if "*" in rule.verbs or "*" in rule.resources]
    if wildcard:
        yield _unbound(WILDCARD, role, resource, wildcard)


def _unbound(check: PostureCheck, role: K8sObject, resource: Resource, rules: list[Rule], extra: str = "") -> Finding:
    evidence = f"not bound: no RoleBinding or ClusterRoleBinding refers to {role.kind}/{role.name}; " \
               f"if bound it grants {' | '.join(str(rule) for rule in rules)}{extra}"
    return check.finding(role, evidence, severity=Severity.LOW, title=f"{check.title} (role not bound yet)"
                         .replace("Subject", "Role", 1))


def dangerous_rights(index: RbacIndex, subject: Subject, inherited: bool = False) -> dict[PostureCheck, list[Grant]]:
    """The checks the subject's rights make (cluster-admin first), each with its evidence grants."""
    grants = index.grants(subject, inherited)
    out: dict[PostureCheck, list[Grant]] = {}
    admin = [g for g in grants if g.cluster_wide and (g.rule.is_full_wildcard or g.role.name == "cluster-admin")]
    if admin:
        out[CLUSTER_ADMIN] = admin
    if not grants:
        return out
    for check, probes in PROBES.items():
        matched = _unique(g for probe in probes for g in probe.grants(index, subject, inherited))
        if matched:
            out[check] = matched
    return out


def rights_names(rights: dict[PostureCheck, list[Grant]]) -> list[str]:
    """Check ids of a subject's dangerous rights; cluster-admin alone when held (it implies the rest)."""
    return [CLUSTER_ADMIN.id] if CLUSTER_ADMIN in rights else [check.id for check in rights]


def api_grants(grants: Iterable[Grant]) -> list[Grant]:
    """The grants that allow something beyond discovery and self-review."""
    return [g for g in grants if g.rule.resources and not g.rule.resources <= DISCOVERY_RESOURCES]


def subject_findings(index: RbacIndex, subject: Subject) -> Iterator[Finding]:
    """The rbac-* findings of one subject, from its own bindings."""
    own = index.grants(subject, inherited=False)
    if not own:
        return
    resource = subject_resource(subject)
    matched = dangerous_rights(index, subject)
    admin = matched.pop(CLUSTER_ADMIN, [])
    wildcard = [g for g in own if "*" in g.rule.verbs or "*" in g.rule.resources]

    if admin:
        implied = ", ".join(c.id for c in matched) or "none"
        yield _finding(CLUSTER_ADMIN, resource, admin, f"; implies {implied}")
    else:
        for check, grants in matched.items():
            severity = check.severity if any(g.cluster_wide for g in grants) else _lower(check.severity)
            yield _finding(check, resource, grants, severity=severity)
        if wildcard:
            yield _finding(WILDCARD, resource, wildcard)

    default_rights = api_grants(own) if (subject.kind, subject.name) == ("ServiceAccount", "default") else []
    if default_rights:
        yield _finding(DEFAULT_SA, resource, default_rights, severity=Severity.HIGH if matched or admin else None)
    anonymous = _anonymous_grants(subject, own, matched, admin)
    if anonymous:
        yield _finding(ANONYMOUS_CHECK, resource, anonymous)


def _anonymous_grants(subject: Subject, own: list[Grant], matched: dict[PostureCheck, list[Grant]],
                      admin: list[Grant]) -> list[Grant]:
    """Grants that open the API to anyone: any real right for anonymous, a powerful one for everyone."""
    if (subject.kind, subject.name) in (("User", ANONYMOUS), ("Group", UNAUTHENTICATED)):
        return api_grants(own)
    if (subject.kind, subject.name) == ("Group", AUTHENTICATED):
        return admin or _unique(g for grants in matched.values() for g in grants)
    return []


def subject_resource(subject: Subject) -> Resource:
    """The resource a per-subject finding is about."""
    return Resource(subject.kind, subject.name, subject.namespace)


def _finding(check: PostureCheck, resource: Resource, grants: list[Grant], extra: str = "",
             severity: Severity | None = None) -> Finding:
    evidence = describe_grants(grants)
    return check.finding(resource, evidence + extra, severity=severity, source=grants[0].binding.source)


def describe_grants(grants: list[Grant], limit: int = 5) -> str:
    """Evidence: each binding -> role path once, with the rules it grants (at most `limit` paths)."""
    paths: dict[tuple[int, int], list[Grant]] = {}
    for grant in grants:
        paths.setdefault((id(grant.binding), id(grant.role)), []).append(grant)
    lines = [f"{same[0].path()}: {' | '.join(str(g.rule) for g in same)}" for same in list(paths.values())[:limit]]
    if len(paths) > limit:
        lines.append(f"and {len(paths) - limit} more")
    return "; ".join(lines)


def _lower(severity: Severity) -> Severity:
    """A right held in one namespace only weighs one level less than cluster-wide."""
    return Severity(max(Severity.LOW, severity - 1))


def _unique(grants: Iterable[Grant]) -> list[Grant]:
    out: list[Grant] = []
    for grant in grants:
        if not any(grant is seen for seen in out):
            out.append(grant)
    return out
