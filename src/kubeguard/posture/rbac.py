"""RBAC resolution over a Snapshot: who may do what, where, and through which binding.

`RbacIndex(snapshot)` indexes every RoleBinding and ClusterRoleBinding once, resolving the Role
or ClusterRole each one names (ClusterRoles with an `aggregationRule` get the rules of every
ClusterRole their selectors match, transitively). Then:

- `subjects()`: every ServiceAccount, User and Group that is bound or exists (ServiceAccount
  objects, and the service accounts pods run as);
- `grants(subject)`: the rules the subject holds, each with its scope (a namespace, or "" for
  cluster-wide) and the binding and role it came through; service accounts also get the rights
  of the groups they belong to (`system:serviceaccounts`, `system:serviceaccounts:NS`,
  `system:authenticated`), users other than `system:anonymous` those of `system:authenticated`,
  and `system:anonymous` those of `system:unauthenticated`;
- `allows(subject, verb, resource, ...)`: the grants that allow one request (the evidence),
  matching as the API server's RBAC authorizer does: `*` for verbs, apiGroups, resources and
  resourceNames, `*/subresource`, `pods/exec` style subresources, a RoleBinding's rules limited
  to its namespace.

The default ClusterRoles cluster-admin, admin, edit and view are assumed when the snapshot binds
to them without defining them (manifest folders rarely carry them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeguard.cluster.manifest_fields import dicts, strings
from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.cluster.snapshot import K8sObject, Snapshot, SourceRef

ALL = "*"
SA_USER_PREFIX = "system:serviceaccount:"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
ALL_SERVICE_ACCOUNTS = "system:serviceaccounts"


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """A ServiceAccount (with its namespace), a User or a Group."""

    kind: str
    name: str
    namespace: str = ""

    @property
    def username(self) -> str:
        """The name the API server authenticates this subject as."""
        if self.kind == "ServiceAccount":
            return f"{SA_USER_PREFIX}{self.namespace}:{self.name}"
        return self.name

    def groups(self) -> tuple[Subject, ...]:
        """The groups the API server puts this subject in (those we can know without a token)."""
        if self.kind == "ServiceAccount":
            return (
                Subject("Group", ALL_SERVICE_ACCOUNTS),
                Subject("Group", f"{ALL_SERVICE_ACCOUNTS}:{self.namespace}"),
                Subject("Group", AUTHENTICATED),
            )
        if self.kind == "User":
            return (Subject("Group", UNAUTHENTICATED),) if self.name == ANONYMOUS else (
                Subject("Group", AUTHENTICATED),)
        return ()

    def __str__(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


def subject_from_binding(entry: dict[str, Any], binding_namespace: str) -> Subject | None:
    """One entry of a binding's `subjects`; a ServiceAccount without namespace takes the binding's."""
    kind = str(entry.get("kind", ""))
    name = str(entry.get("name", ""))
    if not name or kind not in ("ServiceAccount", "User", "Group"):
        return None
    if kind == "ServiceAccount":
        namespace = str(entry.get("namespace") or binding_namespace or "default")
        return Subject(kind, name, namespace)
    if kind == "User" and name.startswith(SA_USER_PREFIX):
        parts = name[len(SA_USER_PREFIX):].split(":", 1)
        if len(parts) == 2:  # a User named like a service account *is* that service account
            return Subject("ServiceAccount", parts[1], parts[0])
    return Subject(kind, name)


def _strings(value: Any) -> frozenset[str]:
    return frozenset(strings(value))


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset({""})
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Rule:
        return cls(
            verbs=_strings(raw.get("verbs")),
            api_groups=_strings(raw.get("apiGroups")),
            resources=_strings(raw.get("resources")),
            resource_names=_strings(raw.get("resourceNames")),
            non_resource_urls=_strings(raw.get("nonResourceURLs")),
        )

    def allows_verb(self, verb: str) -> bool:
        return ALL in self.verbs or verb in self.verbs

    def allows_group(self, group: str) -> bool:
        return ALL in self.api_groups or group in self.api_groups

    def allows_resource(self, resource: str, subresource: str | None = None) -> bool:
        """As the authorizer: `*`, exact `res` or `res/sub`, or `*/sub` for a subresource."""
        combined = f"{resource}/{subresource}" if subresource else resource
        if ALL in self.resources or combined in self.resources:
            return True
        return bool(subresource) and f"*/{subresource}" in self.resources

    def allows_name(self, name: str | None) -> bool:
        """No resourceNames: any object. With resourceNames: only a named request may match."""
        if not self.resource_names or ALL in self.resource_names:
            return True
        return name is not None and name in self.resource_names

    def allows(self, verb: str, resource: str, group: str = "", subresource: str | None = None,
               name: str | None = None) -> bool:
        return (self.allows_verb(verb) and self.allows_group(group)
                and self.allows_resource(resource, subresource) and self.allows_name(name))

    @property
    def is_full_wildcard(self) -> bool:
        """`*` verbs on `*` resources of `*` groups: everything (the cluster-admin rule)."""
        return ALL in self.verbs and ALL in self.resources and ALL in self.api_groups

    def __str__(self) -> str:
        parts = [f"verbs={','.join(sorted(self.verbs)) or '-'}"]
        if self.non_resource_urls:
            parts.append(f"nonResourceURLs={','.join(sorted(self.non_resource_urls))}")
        if self.resources:
            groups = ",".join(g or "core" for g in sorted(self.api_groups)) or "-"
            parts.append(f"apiGroups={groups}")
            parts.append(f"resources={','.join(sorted(self.resources))}")
        if self.resource_names:
            parts.append(f"resourceNames={','.join(sorted(self.resource_names))}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True, eq=False)
class Grant:
    """A rule a subject holds: scope "" is cluster-wide, otherwise the binding's namespace."""

    rule: Rule
    scope: str
    binding: K8sObject
    role: K8sObject
    via: Subject  # the subject named in the binding (the SA itself, or a group it is in)

    @property
    def cluster_wide(self) -> bool:
        return self.scope == ""

    def path(self) -> str:
        """How the subject got this: binding -> role (scope [via group])."""
        where = "cluster-wide" if self.cluster_wide else f"in namespace {self.scope}"
        via = f" via {self.via}" if self.via.kind == "Group" else ""
        role = f"{self.role.kind}/{_qualified(self.role)}"
        return f"{self.binding.kind}/{_qualified(self.binding)} -> {role} ({where}{via})"

    def describe(self) -> str:
        """One line of evidence: binding -> role (scope [via group]): rule."""
        return f"{self.path()}: {self.rule}"


def _qualified(obj: K8sObject) -> str:
    return f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name


@dataclass(slots=True)
class RbacIndex:
    """RBAC of one Snapshot, indexed once by subject."""

    snapshot: Snapshot
    _direct: dict[Subject, list[Grant]] = field(default_factory=lambda: defaultdict(list))
    _subjects: set[Subject] = field(default_factory=set)
    _cluster_rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    missing_roles: list[tuple[K8sObject, str]] = field(default_factory=list)
    _bound: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, namespace, name) a binding refers to
    _aggregated_into: dict[str, set[str]] = field(default_factory=dict)  # ClusterRole -> aggregating ClusterRoles

    def __post_init__(self) -> None:
        self._resolve_cluster_roles()
        roles = {(o.namespace, o.name): o for o in self.snapshot.of_kind("Role")}
        cluster_roles = self._cluster_role_objects()
        for binding in self.snapshot.of_kind("RoleBinding", "ClusterRoleBinding"):
            self._index_binding(binding, roles, cluster_roles)
        for sa in self.snapshot.of_kind("ServiceAccount"):
            self._subjects.add(Subject("ServiceAccount", sa.name, sa.namespace))
        for pod in self.snapshot.pod_templates():
            self._subjects.add(Subject("ServiceAccount", pod.service_account, pod.namespace))

    def _cluster_role_objects(self) -> dict[str, K8sObject]:
        """ClusterRoles of the snapshot, plus the built-in defaults it does not define."""
        by_name = {o.name: o for o in self.snapshot.of_kind("ClusterRole")}
        for name in BUILTIN_CLUSTER_ROLES:
            if name not in by_name:
                by_name[name] = builtin_cluster_role(name)
        return by_name

    def _resolve_cluster_roles(self) -> None:
        """Rules of every ClusterRole, aggregation included (transitively, cycles cut)."""
        by_name = self._cluster_role_objects()
        own = {name: tuple(_rules(obj)) for name, obj in by_name.items()}
        selectors: dict[str, list[dict[str, Any]]] = {}
        for name, obj in by_name.items():
            agg = obj.raw.get("aggregationRule")
            if isinstance(agg, dict):
                selectors[name] = dicts(agg.get("clusterRoleSelectors"))

        def resolve(name: str, seen: frozenset[str]) -> tuple[Rule, ...]:
            if name in self._cluster_rules:
                return self._cluster_rules[name]
            rules = list(own.get(name, ()))  # a dump holds the aggregated result already: keep it
            for selector in selectors.get(name, []):
                for other, obj in by_name.items():
                    if other == name or other in seen or not label_selector_selects(selector, obj.labels):
                        continue
                    self._aggregated_into.setdefault(other, set()).add(name)
                    rules.extend(r for r in resolve(other, seen | {name}) if r not in rules)
            result = tuple(rules)
            if not seen:  # only memoise complete resolutions
                self._cluster_rules[name] = result
            return result

        for name in by_name:
            resolve(name, frozenset())

    def _index_binding(self, binding: K8sObject, roles: dict[tuple[str, str], K8sObject],
                       cluster_roles: dict[str, K8sObject]) -> None:
        ref = binding.raw.get("roleRef")
        if not isinstance(ref, dict):
            return
        ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        scope = binding.namespace if binding.kind == "RoleBinding" else ""
        self._bound.add((ref_kind, scope if ref_kind == "Role" else "", ref_name))
        if ref_kind == "ClusterRole" and ref_name in cluster_roles:
            role = cluster_roles[ref_name]
            rules = self._cluster_rules.get(ref_name, ())
        elif ref_kind == "Role" and binding.kind == "RoleBinding" and (scope, ref_name) in roles:
            role = roles[(scope, ref_name)]
            rules = tuple(_rules(role))
        else:
            self.missing_roles.append((binding, f"{ref_kind}/{ref_name}"))
            rules = ()
            role = None
        for entry in dicts(binding.raw.get("subjects")):
            subject = subject_from_binding(entry, binding.namespace)
            if subject is None:
                continue
            self._subjects.add(subject)
            if role is None:
                continue
            for rule in rules:
                # a namespaced binding cannot grant non-resource URLs
                if scope and not rule.resources:
                    continue
                self._direct[subject].append(Grant(rule, scope, binding, role, subject))

    def unbound_roles(self) -> list[tuple[K8sObject, tuple[Rule, ...]]]:
        """Roles and ClusterRoles of the snapshot that no binding refers to, with their rules.

        A ClusterRole aggregated into a bound one (at any depth) counts as bound: its rules are granted.
        """
        out: list[tuple[K8sObject, tuple[Rule, ...]]] = []
        for role in self.snapshot.of_kind("Role"):
            if ("Role", role.namespace, role.name) not in self._bound:
                out.append((role, tuple(_rules(role))))
        for role in self.snapshot.of_kind("ClusterRole"):
            if not self._cluster_role_bound(role.name):
                out.append((role, self._cluster_rules.get(role.name, ())))
        return out

    def _cluster_role_bound(self, name: str) -> bool:
        seen: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if ("ClusterRole", "", current) in self._bound:
                return True
            seen.add(current)
            stack.extend(n for n in self._aggregated_into.get(current, ()) if n not in seen)
        return False

    def subjects(self) -> list[Subject]:
        """Every subject bound by some binding or present as a ServiceAccount, sorted."""
        return sorted(self._subjects)

    def grants(self, subject: Subject, inherited: bool = True) -> list[Grant]:
        """Rules the subject holds: its own bindings, and (by default) those of its groups."""
        out = list(self._direct.get(subject, ()))
        if inherited:
            for group in subject.groups():
                out.extend(self._direct.get(group, ()))
        return out

    def allows(self, subject: Subject, verb: str, resource: str, namespace: str | None = None,
               group: str = "", subresource: str | None = None, name: str | None = None,
               inherited: bool = True) -> list[Grant]:
        """The grants that allow `verb` on `resource[/subresource]` (empty list: denied).

        `namespace`: "" asks for a cluster-wide right (cluster-scoped resources, or all
        namespaces); a name asks within that namespace; None accepts any scope.
        `name`: None asks for any object, so rules restricted by resourceNames do not count.
        """
        return [g for g in self.grants(subject, inherited)
                if _in_scope(g, namespace) and g.rule.allows(verb, resource, group, subresource, name)]

    def allows_any(self, subject: Subject, verbs: Iterable[str], resource: str, namespace: str | None = None,
                   group: str = "", subresource: str | None = None, inherited: bool = True) -> list[Grant]:
        """The grants allowing any of `verbs` (each grant once)."""
        seen: list[Grant] = []
        for verb in verbs:
            for grant in self.allows(subject, verb, resource, namespace, group, subresource, inherited=inherited):
                if grant not in seen:
                    seen.append(grant)
        return seen


def _in_scope(grant: Grant, namespace: str | None) -> bool:
    if namespace is None or grant.cluster_wide:
        return True
    return grant.scope == namespace


_READ = ["get", "list", "watch"]
_WRITE = ["create", "update", "patch", "delete", "deletecollection"]
_WORKLOADS = [
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps", "endpoints", "persistentvolumeclaims",
                                      "replicationcontrollers", "serviceaccounts"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"]},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"]},
]
_VIEW = [{**r, "verbs": _READ} for r in _WORKLOADS] + [
    {"apiGroups": [""], "resources": ["pods/log", "pods/status", "events", "namespaces"], "verbs": _READ}]
_EDIT = _VIEW + [{**r, "verbs": _WRITE} for r in _WORKLOADS] + [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ + _WRITE},
    {"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/portforward"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
]
_ADMIN = [*_EDIT, {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                   "verbs": _READ + _WRITE}]
# The default user-facing ClusterRoles every cluster has. Manifest folders bind to them without
# defining them, so they are assumed when absent (admin/edit/view: their main rules, abridged).
BUILTIN_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
}


def builtin_cluster_role(name: str) -> K8sObject:
    """A default ClusterRole as the API server creates it (source: built-in)."""
    raw = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
           "rules": BUILTIN_CLUSTER_ROLES[name]}
    return K8sObject(raw, SourceRef(f"built-in ClusterRole {name}"))


def _rules(role: K8sObject) -> Iterable[Rule]:
    for raw in dicts(role.raw.get("rules")):
        yield Rule.from_raw(raw)
