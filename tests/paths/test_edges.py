"""One fixture per edge family (modelled on KubeHound's attack types), each with a hardened twin.

Each case names an edge (kind, from, to) that the vulnerable fixture must have; on the hardened
twin the target node still exists but no edge of that kind leaves the same source (nor, for the
families whose kind only attackers create, anywhere but from cluster-admin's own rights).
"""

from __future__ import annotations

import pytest

from kubeguard.posture.paths.graph import ANY_NODE, CLOUD_DATA, COMPUTE_HIJACK, INTERNET, METADATA_API, NODE_ROOT

# Structural kinds that exist in any cluster: on the twin only the named pair must be gone.
PLACEMENT_KINDS = ("NODE_PODS", "SECRET_TOKEN")

CASES = [
    # entry
    ("entry", "EXPOSED", INTERNET, "endpoint:web/web"),
    ("entry", "EXPOSED", INTERNET, "endpoint:web/ingress/shop"),
    ("entry", "UNAUTH_CONSOLE", "endpoint:web/dashboard", "sa:web/dashboard"),
    # Kubernetes API
    ("api", "TOKEN_STEAL", "ctr:api/attacker/app", "sa:api/exec-sa"),
    ("api", "POD_EXEC", "perms:RoleBinding/api/exec", "pod:api/victim"),
    ("api", "POD_ATTACH", "perms:RoleBinding/api/attach", "pod:api/victim"),
    ("api", "POD_CREATE", "perms:RoleBinding/api/create", "sa:api/victim-sa"),
    ("api", "POD_PATCH", "perms:RoleBinding/api/patch", "pod:api/victim"),
    ("api", "TOKEN_LIST", "perms:RoleBinding/api/secrets", "secret:api/db-creds"),
    ("api", "TOKEN_CREATE", "perms:RoleBinding/api/token", "sa:api/victim-sa"),
    ("api", "ROLE_BIND", "perms:RoleBinding/api/bind", "perms:ns-admin/api"),
    ("api", "ESCALATE", "perms:RoleBinding/api/escalate", "perms:ns-admin/api"),
    ("api", "IMPERSONATE", "perms:RoleBinding/api/imp", "sa:api/victim-sa"),
    ("api", "NODES_PROXY", "perms:ClusterRoleBinding//node-proxy", "pod:api/victim"),
    # escapes
    ("escapes", "CE_PRIV_MOUNT", "ctr:esc/priv/c", ANY_NODE),
    ("escapes", "CE_NSENTER", "ctr:esc/nsenter/c", ANY_NODE),
    ("escapes", "CE_SYS_PTRACE", "ctr:esc/ptrace/c", ANY_NODE),
    ("escapes", "CE_MODULE_LOAD", "ctr:esc/module/c", ANY_NODE),
    ("escapes", "CE_UMH_CORE_PATTERN", "ctr:esc/corepattern/c", ANY_NODE),
    ("escapes", "CE_VAR_LOG_SYMLINK", "ctr:esc/varlog/c", ANY_NODE),
    ("escapes", "EXPLOIT_RUNTIME_SOCK", "ctr:esc/sock/c", ANY_NODE),
    ("escapes", "EXPLOIT_HOST_WRITE", "ctr:esc/hostwrite/c", ANY_NODE),
    ("escapes", "EXPLOIT_HOST_READ", "ctr:esc/hostread/c", "tokens:*"),
    # node
    ("node", "NODE_PODS", "node:node-a", "pod:nodes/victim"),
    ("node", "SECRET_TOKEN", "tokens:node-a", "sa:nodes/victim-sa"),
    # cloud
    ("cloud", "CLOUD_CREDS", "ctr:cloud/keys-env/app", "cloud:aws-key:AKIA****LE"),
    ("cloud", "CLOUD_CREDS", "secret:cloud/aws-creds", "cloud:secret:cloud/aws-creds"),
    ("cloud", "CLOUD_CREDS", "ctr:cloud/irsa/app", "cloud:aws-role:arn:aws:iam::111122223333:role/s3-reader"),
    ("cloud", "METADATA_API", "ctr:cloud/open-egress/app", METADATA_API),
    ("cloud", "METADATA_API", "ctr:cloud/host-net/app", METADATA_API),
    # impact
    ("impact", "RESOURCE_HIJACK", "ctr:batch/report/report", COMPUTE_HIJACK),
]


@pytest.mark.parametrize(("family", "kind", "source", "target"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_edge_and_hardened_twin(fixture_graph, family, kind, source, target):
    graph = fixture_graph(family)
    assert graph.has_edge_kind(source, target, kind), f"{kind} {source} -> {target} missing"
    data = graph.g.edges[source, target]
    assert data["evidence"]
    if source.startswith("perms:"):  # a right of a binding: the binding's finding is on HAS_PERMISSIONS
        closers = [f for u in graph.g.predecessors(source) for fs in graph.edge_closers(u, source) for f in fs]
        assert closers and all(f in graph.findings for f in closers)
    elif kind not in ("NODE_PODS", "SECRET_TOKEN", "SECRET_MOUNT"):  # the edge names the findings creating it
        closers = [f for fs in graph.edge_closers(source, target) for f in fs]
        assert closers and all(f in graph.findings for f in closers)

    hardened = fixture_graph(f"{family}-hardened")
    false_edges = [(u, v) for u, v in hardened.edges_of_kind(kind)
                   if (u, v) == (source, target) or (kind not in PLACEMENT_KINDS and u != "cluster-admin"
                                                     and not u.startswith("perms:ns-admin/"))]
    assert false_edges == [], f"hardened twin has {kind} edges {false_edges}"


def test_node_placement_hardened_keeps_victim_on_its_own_node(fixture_graph):
    hardened = fixture_graph("node-hardened")
    assert hardened.has_edge_kind("node:node-b", "pod:nodes/victim", "NODE_PODS")
    assert not hardened.has_edge_kind("node:node-a", "pod:nodes/victim", "NODE_PODS")
    assert not hardened.has_edge_kind("tokens:node-a", "sa:nodes/victim-sa", "SECRET_TOKEN")


def test_mounted_secret_leads_to_its_keys(fixture_graph):
    graph = fixture_graph("cloud")
    assert graph.has_edge_kind("ctr:cloud/keys-secret/app", "secret:cloud/aws-creds", "SECRET_MOUNT")
    hardened = fixture_graph("cloud-hardened")
    assert "secret:cloud/aws-creds" in hardened.g
    assert list(hardened.g.successors("secret:cloud/aws-creds")) == []


def test_every_host_reaches_node_root_and_cloud_identities_reach_data(fixture_graph):
    graph = fixture_graph("cloud")
    for node, data in graph.g.nodes(data=True):
        if data["kind"] == "node":
            assert graph.has_edge_kind(node, NODE_ROOT, "ROOT_ON_NODE")
        if node.startswith("cloud:"):
            assert graph.has_edge_kind(node, CLOUD_DATA, "CLOUD_ACCESS")


def test_secrets_never_leak_into_the_graph(fixture_graph):
    graph = fixture_graph("cloud")
    text = repr(list(graph.g.nodes(data=True))) + repr(list(graph.g.edges(data=True)))
    text += repr([f.to_dict() for f in graph.findings.values()])
    assert "wJalrXUtnFEMI" not in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text
