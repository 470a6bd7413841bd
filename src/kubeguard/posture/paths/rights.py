"""The dangerous rights of a permission set (a binding's grants), each the kind of edge it makes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubeguard.posture.rbac import Grant

# Controllers whose create/patch right is a pod create/patch right: (resource, API group).
WORKLOAD_KINDS = (("deployments", "apps"), ("daemonsets", "apps"), ("statefulsets", "apps"), ("replicasets", "apps"),
                  ("jobs", "batch"), ("cronjobs", "batch"), ("replicationcontrollers", ""))


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
