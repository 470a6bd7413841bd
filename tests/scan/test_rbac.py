"""RbacIndex resolution and the rbac-* checks, positives and negatives."""

from __future__ import annotations

from checkutil import pairs, snapshot_from_yaml

from kubeguard.model import Severity
from kubeguard.posture.rbac import RbacIndex, Rule, Subject
from kubeguard.posture.rbac_checks import evaluate_rbac

BASE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cluster-admin}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
- {nonResourceURLs: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: team-a}
rules:
- {apiGroups: [""], resources: ["secrets"], verbs: ["get", "list"]}
- {apiGroups: [""], resources: ["configmaps"], verbs: ["get"], resourceNames: ["app-config"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-reads, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: ci}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: exec-only}
rules:
- {apiGroups: [""], resources: ["pods/exec"], verbs: ["create"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: debuggers, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: exec-only}
subjects:
- {kind: Group, name: debuggers}
- {kind: User, name: "system:serviceaccount:team-b:tool"}
"""


def test_rolebinding_to_role_is_scoped_to_its_namespace() -> None:
    index = RbacIndex(snapshot_from_yaml(BASE))
    ci = Subject("ServiceAccount", "ci", "team-a")
    grants = index.allows(ci, "get", "secrets", namespace="team-a")
    assert [g.binding.name for g in grants] == ["ci-reads"]
    assert grants[0].scope == "team-a" and grants[0].role.name == "reader"
    assert index.allows(ci, "get", "secrets", namespace="team-b") == []
    assert index.allows(ci, "get", "secrets", namespace="") == []  # not cluster-wide
    assert index.allows(ci, "delete", "secrets", namespace="team-a") == []


def test_resource_names_limit_a_rule_to_named_objects() -> None:
    index = RbacIndex(snapshot_from_yaml(BASE))
    ci = Subject("ServiceAccount", "ci", "team-a")
    assert index.allows(ci, "get", "configmaps", namespace="team-a") == []
    assert len(index.allows(ci, "get", "configmaps", namespace="team-a", name="app-config")) == 1
    assert index.allows(ci, "get", "configmaps", namespace="team-a", name="other") == []


def test_clusterrolebinding_wildcards_allow_everything_everywhere() -> None:
    index = RbacIndex(snapshot_from_yaml(BASE))
    alice = Subject("User", "alice")
    for verb, resource, group, sub in [("delete", "nodes", "", None), ("create", "pods", "", "exec"),
                                       ("escalate", "clusterroles", "rbac.authorization.k8s.io", None)]:
        assert index.allows(alice, verb, resource, namespace="", group=group, subresource=sub)


def test_subresource_needs_its_own_rule() -> None:
    index = RbacIndex(snapshot_from_yaml(BASE))
    tool = Subject("ServiceAccount", "tool", "team-b")  # bound as a User named like the SA
    assert index.allows(tool, "create", "pods", namespace="team-b", subresource="exec")
    assert index.allows(tool, "create", "pods", namespace="team-b") == []
    assert index.allows(tool, "create", "pods", namespace="team-b", subresource="attach") == []
    assert Rule.from_raw({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}).allows(
        "get", "pods", subresource="status")


def test_service_accounts_inherit_group_rights() -> None:
    snap = snapshot_from_yaml(BASE + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: all-sas-list-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-lister}
subjects:
- {kind: Group, name: "system:serviceaccounts:team-a"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-lister}
rules:
- {apiGroups: [""], resources: ["pods"], verbs: ["list"]}
""")
    index = RbacIndex(snap)
    ci = Subject("ServiceAccount", "ci", "team-a")
    grants = index.allows(ci, "list", "pods", namespace="")
    assert [g.via for g in grants] == [Subject("Group", "system:serviceaccounts:team-a")]
    assert index.allows(ci, "list", "pods", namespace="", inherited=False) == []
    assert index.allows(Subject("ServiceAccount", "x", "team-b"), "list", "pods") == []


def test_aggregated_clusterrole_collects_matching_roles_transitively() -> None:
    snap = snapshot_from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring-secrets, labels: {rbac.example.com/aggregate-to-monitoring: "true"}}
aggregationRule:
  clusterRoleSelectors:
  - matchExpressions: [{key: tier, operator: In, values: [deep]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deep, labels: {tier: deep}}
rules:
- {apiGroups: [""], resources: ["secrets"], verbs: ["list"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: unrelated, labels: {rbac.example.com/aggregate-to-monitoring: "false"}}
rules:
- {apiGroups: [""], resources: ["nodes"], verbs: ["delete"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prom}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: monitoring}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]
""")
    index = RbacIndex(snap)
    prom = Subject("ServiceAccount", "prometheus", "monitoring")
    grants = index.allows(prom, "list", "secrets", namespace="")
    assert len(grants) == 1 and grants[0].role.name == "monitoring"
    assert index.allows(prom, "delete", "nodes") == []


def test_missing_role_grants_nothing_but_is_recorded() -> None:
    snap = snapshot_from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dangling, namespace: x}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: gone}
subjects: [{kind: User, name: bob}]
""")
    index = RbacIndex(snap)
    assert index.grants(Subject("User", "bob")) == []
    assert [(b.name, ref) for b, ref in index.missing_roles] == [("dangling", "Role/gone")]
    assert Subject("User", "bob") in index.subjects()


def test_rbac_checks_per_subject() -> None:
    findings = list(evaluate_rbac(snapshot_from_yaml(BASE, "rbac.yaml")))
    assert pairs(findings) == {
        ("rbac-cluster-admin", "User/alice"),
        ("rbac-secrets-read", "ServiceAccount/team-a/ci"),
        ("rbac-pod-exec", "Group/debuggers"),
        ("rbac-pod-exec", "ServiceAccount/team-b/tool"),
    }
    by_id = {(f.check, str(f.resource)): f for f in findings}
    admin = by_id[("rbac-cluster-admin", "User/alice")]
    assert admin.severity == Severity.CRITICAL and admin.category == "rbac"
    assert "ClusterRoleBinding/ops-admin -> ClusterRole/cluster-admin" in admin.evidence
    assert "rbac-escalate" in admin.evidence  # implied rights named, not raised separately
    assert admin.file == "rbac.yaml" and admin.line and "MS-TA9019" in admin.mitre
    # namespaced rights weigh one level less than cluster-wide ones
    assert by_id[("rbac-secrets-read", "ServiceAccount/team-a/ci")].severity == Severity.MEDIUM


def test_escalation_token_csr_webhook_nodes_proxy_wildcard() -> None:
    snap = snapshot_from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: dangerous}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [clusterrolebindings], verbs: [create]}
- {apiGroups: [""], resources: [serviceaccounts/token], verbs: [create]}
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests/approval], verbs: [update]}
- {apiGroups: [admissionregistration.k8s.io], resources: [mutatingwebhookconfigurations], verbs: [patch]}
- {apiGroups: [""], resources: [nodes/proxy], verbs: [get]}
- {apiGroups: [apps], resources: ["*"], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangerous}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dangerous}
subjects: [{kind: ServiceAccount, name: operator, namespace: ops}]
""")
    assert pairs(evaluate_rbac(snap)) == {
        (check, "ServiceAccount/ops/operator") for check in (
            "rbac-escalate", "rbac-token-create", "rbac-csr-approve", "rbac-webhook-control",
            "rbac-nodes-proxy", "rbac-wildcard")
    }


def test_anonymous_and_default_sa() -> None:
    snap = snapshot_from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view-pods}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: self-review}
rules: [{apiGroups: [authorization.k8s.io], resources: [selfsubjectaccessreviews], verbs: [create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: anon-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view-pods}
subjects: [{kind: User, name: "system:anonymous"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: everyone-self-review}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: self-review}
subjects: [{kind: Group, name: "system:unauthenticated"}, {kind: Group, name: "system:authenticated"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view-pods}
subjects: [{kind: ServiceAccount, name: default}]
""")
    assert pairs(evaluate_rbac(snap)) == {
        ("rbac-anonymous", "User/system:anonymous"),
        ("rbac-default-sa", "ServiceAccount/shop/default"),
    }


def test_powerful_rights_for_all_authenticated_users() -> None:
    snap = snapshot_from_yaml(BASE + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: oops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: exec-only}
subjects: [{kind: Group, name: "system:authenticated"}]
""")
    found = pairs(evaluate_rbac(snap), "rbac-")
    assert ("rbac-anonymous", "Group/system:authenticated") in found
    assert ("rbac-pod-exec", "Group/system:authenticated") in found
    # inherited rights are reported on the group, not repeated on every service account
    assert ("rbac-pod-exec", "ServiceAccount/team-a/ci") not in found
    index = RbacIndex(snap)
    assert index.allows(Subject("ServiceAccount", "ci", "team-a"), "create", "pods", subresource="exec")


def test_check_metadata_is_complete() -> None:
    from kubeguard.model import MITRE_ID
    from kubeguard.posture import exposure, workload_checks  # noqa: F401  (registers their checks)
    from kubeguard.posture.registry import CHECKS

    mine = {c for c in CHECKS.values() if c.category in ("rbac", "workloads", "exposure")}
    assert len(mine) == 12 + 13 + 3
    for check in mine:
        assert check.title and check.remediation and check.mitre, check.id
        assert all(MITRE_ID.match(m) for m in check.mitre), check.id


def test_default_sa_with_discovery_only_is_not_reported() -> None:
    snap = snapshot_from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: self-review}
rules: [{apiGroups: [authorization.k8s.io], resources: [selfsubjectaccessreviews], verbs: [create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-self-review, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: self-review}
subjects: [{kind: ServiceAccount, name: default}]
""")
    assert pairs(evaluate_rbac(snap)) == set()
