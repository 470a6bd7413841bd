"""Workload checks: each one positive and negative, evidence naming container and field path."""

from __future__ import annotations

import json

from checkutil import pairs, snapshot_from_yaml

from kubeguard.model import Severity
from kubeguard.posture.secrets import find_secret
from kubeguard.posture.workload_checks import evaluate_workloads, image_pinned
from kubeguard.redact import mask

HARDENED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: safe, namespace: shop, labels: {app: safe}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 10001}
  containers:
  - name: app
    image: registry.example.com/shop/app:1.4.2
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
    resources: {limits: {cpu: 500m, memory: 256Mi}}
    env:
    - {name: LOG_LEVEL, value: debug}
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: API_TOKEN, value: "$(TOKEN_FROM_FILE)"}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""

RISKY_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: agent, namespace: ops}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      hostPID: true
      hostNetwork: true
      containers:
      - name: main
        image: busybox
        securityContext:
          privileged: true
          runAsUser: 0
          capabilities: {add: [SYS_ADMIN, NET_RAW]}
        volumeMounts:
        - {name: etc, mountPath: /host/etc}
        - {name: sock, mountPath: /var/run/docker.sock}
        - {name: data, mountPath: /data, readOnly: true}
        env:
        - {name: AWS_ACCESS_KEY_ID, value: AKIAIOSFODNN7EXAMPLE}
        - {name: AWS_SECRET_ACCESS_KEY, value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}
        - {name: LOG_LEVEL, value: info}
      - name: sidecar
        image: nginx:latest
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true}
        resources: {limits: {cpu: 100m}}
      volumes:
      - {name: etc, hostPath: {path: /etc}}
      - {name: sock, hostPath: {path: /var/run/docker.sock, type: Socket}}
      - {name: data, hostPath: {path: /srv/data}}
"""


def test_hardened_pod_has_no_workload_findings() -> None:
    assert list(evaluate_workloads(snapshot_from_yaml(HARDENED_POD))) == []


def test_risky_deployment_findings_per_container() -> None:
    findings = list(evaluate_workloads(snapshot_from_yaml(RISKY_DEPLOYMENT, "agent.yaml")))
    got = {(f.check, f.workload.container if f.workload else "") for f in findings}
    assert got == {
        ("host-namespace", ""), ("host-path", ""), ("runtime-socket", ""),
        ("privileged", "main"), ("dangerous-capability", "main"), ("privilege-escalation-allowed", "main"),
        ("run-as-root", "main"), ("writable-root-fs", "main"), ("no-resource-limits", "main"),
        ("secret-in-env", "main"), ("image-unpinned", "main"),
        ("no-resource-limits", "sidecar"), ("image-unpinned", "sidecar"),
    }
    # hostNetwork pods are outside NetworkPolicy: no missing-network-policy for them
    assert all(f.resource.kind == "Deployment" and f.resource.namespace == "ops" for f in findings)
    assert len({f.id for f in findings}) == len(findings)  # one finding per (check, resource, container)
    by = {(f.check, f.workload.container if f.workload else ""): f for f in findings}
    priv = by[("privileged", "main")]
    assert "spec.template.spec.containers[0].securityContext.privileged: true" in priv.evidence
    assert priv.file == "agent.yaml" and priv.line == 2
    assert "SYS_ADMIN" in by[("dangerous-capability", "main")].evidence
    assert by[("dangerous-capability", "main")].severity == Severity.CRITICAL
    assert by[("run-as-root", "main")].severity == Severity.HIGH
    host_path = by[("host-path", "")]
    assert "/etc" in host_path.evidence and "/srv/data" not in host_path.evidence  # read-only, not sensitive
    assert host_path.severity == Severity.HIGH
    assert "docker.sock" in by[("runtime-socket", "")].evidence
    assert "docker.sock" not in host_path.evidence
    assert "hostPID: true" in by[("host-namespace", "")].evidence
    assert "has no memory" in by[("no-resource-limits", "sidecar")].evidence
    assert "hostNetwork" in by[("host-namespace", "")].evidence


def test_secret_in_env_masks_values() -> None:
    findings = list(evaluate_workloads(snapshot_from_yaml(RISKY_DEPLOYMENT)))
    secret = next(f for f in findings if f.check == "secret-in-env")
    assert secret.severity == Severity.CRITICAL
    assert "AWS_ACCESS_KEY_ID" in secret.evidence and "AWS_SECRET_ACCESS_KEY" in secret.evidence
    assert "env[0]" in secret.evidence and "LOG_LEVEL" not in secret.evidence
    dumped = json.dumps([f.to_dict() for f in findings])
    assert "AKIAIOSFODNN7EXAMPLE" not in dumped
    assert "wJalrXUtnFEMI" not in dumped and "EXAMPLEKEY" not in dumped


def test_secret_patterns_and_entropy() -> None:
    cases = {
        ("GITHUB", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"): "GitHub token",
        ("SLACK", "xoxb-123456789012-abcdefABCDEF"): "Slack token",
        ("KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIE"): "private key",
        ("GOOGLE_CREDENTIALS", '{"type": "service_account", "project_id": "p"}'): "GCP service account key",
        ("MAPS", "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"): "GCP API key",
        ("DATABASE_URL", "postgres://app:Wq8rT2zK@db:5432/shop"): "password in URL",
        ("DB_PASSWORD", "hunter22"): "password or token",
        ("AZURE_CLIENT_SECRET", "x9Q~f8KdL2pV7mN3bZr5TtY1wE6uI0oP4aS"): "cloud secret key",
    }
    for (name, value), kind in cases.items():
        match = find_secret(name, value)
        assert match is not None and match.kind == kind, (name, match)
        assert value not in match.masked
    for name, value in [("DB_PASSWORD", "changeme"), ("DB_PASSWORD", "aaaaaaaaaaaa"), ("LOG_LEVEL", "Xq9rT2zKw8"),
                        ("API_TOKEN", "/var/run/secrets/token"),
                        ("DATABASE_URL", "postgres://app:$(DB_PASSWORD)@db:5432/shop"),
                        ("DATABASE_URL", "postgres://app:${DB_PASSWORD}@db:5432/shop"),
                        ("PASSWORD", "short"), ("TOKEN", "${TOKEN}")]:
        assert find_secret(name, value) is None, (name, value)
    assert mask("AKIAIOSFODNN7EXAMPLE", 4) == "AKIA********(20 chars)"
    assert mask("hunter22") == "********(8 chars)"


def test_image_pinning() -> None:
    assert not image_pinned("nginx") and not image_pinned("nginx:latest")
    assert not image_pinned("registry:5000/team/app")
    assert image_pinned("registry:5000/team/app:1.2") and image_pinned("nginx@sha256:" + "a" * 64)


def test_sa_token_automount_only_when_sa_has_rights() -> None:
    manifests = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: ci}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: quiet, namespace: ci}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder-pods, namespace: ci}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit-pods}
subjects: [{kind: ServiceAccount, name: builder}, {kind: ServiceAccount, name: quiet}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: edit-pods}
rules: [{apiGroups: [""], resources: [pods], verbs: [create, list]}]
""" + "".join(f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: ci}}
spec:
  serviceAccountName: {sa}
  {extra}
  containers: [{{name: c, image: "busybox:1.36"}}]
""" for name, sa, extra in [
        ("uses-builder", "builder", ""), ("opted-out", "builder", "automountServiceAccountToken: false"),
        ("sa-opted-out", "quiet", ""), ("sa-overridden", "quiet", "automountServiceAccountToken: true"),
        ("no-rights", "default", "")])
    findings = [f for f in evaluate_workloads(snapshot_from_yaml(manifests)) if f.check == "sa-token-automount"]
    assert pairs(findings) == {("sa-token-automount", "Pod/ci/uses-builder"),
                               ("sa-token-automount", "Pod/ci/sa-overridden")}
    assert all("rbac-pod-create" in f.evidence and f.severity == Severity.HIGH for f in findings)


def test_missing_network_policy_per_namespace() -> None:
    manifests = HARDENED_POD + """
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: web, labels: {app: web}}
spec: {containers: [{name: c, image: "nginx:1.27"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: web, labels: {app: api}}
spec: {containers: [{name: c, image: "nginx:1.27"}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-only, namespace: web}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
"""
    findings = [f for f in evaluate_workloads(snapshot_from_yaml(manifests)) if f.check == "missing-network-policy"]
    assert pairs(findings) == {("missing-network-policy", "Namespace/web")}
    assert "Pod/api" in findings[0].evidence and "Pod/web" not in findings[0].evidence


def test_secret_in_env_through_configmaps() -> None:
    manifests = """
apiVersion: v1
kind: ConfigMap
metadata: {name: aws, namespace: etl}
data:
  AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE
  REGION: eu-west-1
---
apiVersion: v1
kind: ConfigMap
metadata: {name: db, namespace: etl}
data: {password: "Zr8uP2qLw9!x"}
---
apiVersion: v1
kind: Pod
metadata: {name: loader, namespace: etl}
spec:
  containers:
  - name: c
    image: loader:1
    envFrom: [{configMapRef: {name: aws}, prefix: S3_}]
    env:
    - {name: DB_PASSWORD, valueFrom: {configMapKeyRef: {name: db, key: password}}}
    - {name: MISSING, valueFrom: {configMapKeyRef: {name: nope, key: x}}}
---
apiVersion: v1
kind: Pod
metadata: {name: other-namespace, namespace: web}
spec:
  containers:
  - {name: c, image: "web:1", envFrom: [{configMapRef: {name: aws}}]}
"""
    findings = [f for f in evaluate_workloads(snapshot_from_yaml(manifests)) if f.check == "secret-in-env"]
    assert pairs(findings) == {("secret-in-env", "Pod/etl/loader")}
    evidence = findings[0].evidence
    assert "S3_AWS_ACCESS_KEY_ID from ConfigMap/aws key AWS_ACCESS_KEY_ID" in evidence
    assert "DB_PASSWORD from ConfigMap/db key password" in evidence and "REGION" not in evidence
    assert "AKIAIOSFODNN7EXAMPLE" not in evidence and "Zr8uP2qLw9" not in evidence
    assert findings[0].severity == Severity.CRITICAL


K3S_SOCKET_POD = """
apiVersion: v1
kind: Pod
metadata: {name: builder, namespace: ci}
spec:
  containers:
  - name: main
    image: registry.example/builder@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    volumeMounts:
    - {name: sock, mountPath: /run/containerd/containerd.sock}
  volumes:
  - {name: sock, hostPath: {path: /run/k3s/containerd/containerd.sock}}
"""


def test_k3s_runtime_socket_is_seen_by_posture_and_attack_paths() -> None:
    """One list of runtime sockets serves both lanes (only the attack graph knew k3s' before)."""
    from kubeguard.posture.paths.build import build_graph

    snapshot = snapshot_from_yaml(K3S_SOCKET_POD)
    findings = list(evaluate_workloads(snapshot))
    sockets = [f for f in findings if f.check == "runtime-socket"]
    assert len(sockets) == 1 and "/run/k3s/containerd/containerd.sock" in sockets[0].evidence
    graph = build_graph(snapshot, findings)
    kinds = {data.get("kind") for _, _, data in graph.g.edges(data=True)}
    assert "EXPLOIT_RUNTIME_SOCK" in kinds
