"""Exposure checks: entry points resolved to pods, consoles without auth, sensitive ports."""

from __future__ import annotations

from checkutil import pairs, snapshot_from_yaml

from kubeguard.cluster.selectors import PodLabelIndex
from kubeguard.model import Severity
from kubeguard.posture.exposure import evaluate_exposure, flag_value


def _deploy(name: str, ns: str, image: str, args: str = "[]", env: str = "[]", ports: str = "[]",
            sa: str = "default", extra: str = "") -> str:
    return f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, tier: backend}}}}
    spec:
      serviceAccountName: {sa}
      {extra}
      containers:
      - {{name: main, image: "{image}", args: {args}, env: {env}, ports: {ports}}}
"""


def _service(name: str, ns: str, kind: str, port: int, target: int | str, selector: str = "") -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  type: {kind}
  selector: {{{selector or f"app: {name}"}}}
  ports: [{{port: {port}, targetPort: {target}}}]
"""


def test_service_types_and_what_is_behind_them() -> None:
    text = (_deploy("web", "shop", "nginx:1.27") + _service("web", "shop", "LoadBalancer", 80, 8080)
            + _deploy("api", "shop", "api:2") + _service("api", "shop", "ClusterIP", 80, 8080)
            + _service("orphan", "shop", "NodePort", 80, 80, "app: nothing"))
    findings = list(evaluate_exposure(snapshot_from_yaml(text)))
    assert pairs(findings) == {("exposed-service", "Service/shop/web"), ("exposed-service", "Service/shop/orphan")}
    web = next(f for f in findings if f.resource.name == "web")
    assert "type LoadBalancer" in web.evidence and "backs Deployment/web" in web.evidence
    orphan = next(f for f in findings if f.resource.name == "orphan")
    assert orphan.severity == Severity.LOW and "no pods" in orphan.evidence


def test_ingress_and_host_port_are_entry_points() -> None:
    text = _deploy("shop", "shop", "shop:1", ports="[{containerPort: 8080}]") + _service(
        "shop", "shop", "ClusterIP", 80, 8080) + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: public, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: shop, port: {number: 80}}}
""" + _deploy("agent", "ops", "agent:1", ports="[{containerPort: 9100, hostPort: 9100}]")
    findings = list(evaluate_exposure(snapshot_from_yaml(text)))
    assert pairs(findings) == {("exposed-service", "Ingress/shop/public"),
                               ("exposed-service", "Deployment/ops/agent")}
    ingress = next(f for f in findings if f.resource.kind == "Ingress")
    assert "shop.example.com/ -> Service/shop:80; backs Deployment/shop" in ingress.evidence


def test_dashboard_skip_login_is_critical_with_cluster_admin() -> None:
    text = _deploy("dash", "kubernetes-dashboard", "kubernetesui/dashboard:v2.7.0",
                   args="[--auto-generate-certificates, --enable-skip-login]", sa="dash") + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dash-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: dash, namespace: kubernetes-dashboard}]
"""
    findings = [f for f in evaluate_exposure(snapshot_from_yaml(text)) if f.check == "unauthenticated-console"]
    assert len(findings) == 1 and findings[0].severity == Severity.CRITICAL
    assert "--enable-skip-login" in findings[0].evidence and "rbac-cluster-admin" in findings[0].evidence
    assert "not exposed" in findings[0].evidence
    # the same dashboard with a powerless service account is still reported, one level lower
    weak = _deploy("dash", "kubernetes-dashboard", "kubernetesui/dashboard:v2.7.0",
                   args="[--enable-insecure-login=true]")
    findings = [f for f in evaluate_exposure(snapshot_from_yaml(weak)) if f.check == "unauthenticated-console"]
    assert [f.severity for f in findings] == [Severity.HIGH]
    # login required: no finding
    safe = _deploy("dash", "kubernetes-dashboard", "kubernetesui/dashboard:v2.7.0",
                   args="[--auto-generate-certificates, --enable-skip-login=false]")
    assert list(evaluate_exposure(snapshot_from_yaml(safe))) == []


def test_other_consoles() -> None:
    text = (
        _deploy("argo", "argo", "quay.io/argoproj/argocli:v3.5.0", args="[server, --auth-mode, server]")
        + _deploy("argo-sso", "argo", "quay.io/argoproj/argocli:v3.5.0", args="[server, --auth-mode=sso]")
        + _deploy("nb", "ds", "jupyter/scipy-notebook:2023-10-20", args="[start-notebook.sh, --NotebookApp.token=]")
        + _deploy("graf", "mon", "grafana/grafana:10.2.0",
                  env="[{name: GF_AUTH_ANONYMOUS_ENABLED, value: 'true'}, "
                      "{name: GF_AUTH_ANONYMOUS_ORG_ROLE, value: Admin}]")
        + _deploy("graf-view", "mon", "grafana/grafana:10.2.0",
                  env="[{name: GF_AUTH_ANONYMOUS_ENABLED, value: 'true'}]")
        + _deploy("scope", "weave", "weaveworks/scope:1.13.2", args="[--no-probe]")
        + _deploy("scope-public", "weave", "weaveworks/scope:1.13.2", args="[--no-probe]")
        + _service("scope-public", "weave", "LoadBalancer", 80, 4040)
    )
    findings = [f for f in evaluate_exposure(snapshot_from_yaml(text)) if f.check == "unauthenticated-console"]
    assert pairs(findings) == {("unauthenticated-console", f"Deployment/{r}") for r in (
        "argo/argo", "ds/nb", "mon/graf", "weave/scope-public")}


def test_sensitive_ports() -> None:
    text = (
        _deploy("redis", "data", "redis:7.2", ports="[{containerPort: 6379}]")
        + _service("redis", "data", "NodePort", 6379, 6379)
        + _deploy("redis-auth", "data", "redis:7.2", args="[--requirepass, $(REDIS_PASSWORD)]",
                  ports="[{containerPort: 6379}]")
        + _service("redis-auth", "data", "LoadBalancer", 6379, 6379)
        + _deploy("es", "data", "docker.elastic.co/elasticsearch/elasticsearch:8.11.0",
                  env="[{name: xpack.security.enabled, value: 'false'}]", ports="[{containerPort: 9200, name: http}]")
        + _service("es", "data", "LoadBalancer", 9200, "http")
        + _deploy("web", "data", "nginx:1.27", ports="[{containerPort: 9200}]")
        + _service("web", "data", "LoadBalancer", 9200, 9200)
        + _deploy("mongo-internal", "data", "mongo:7", ports="[{containerPort: 27017}]")
        + _service("mongo-internal", "data", "ClusterIP", 27017, 27017)
        + _deploy("kibana-es", "logs", "elasticsearch:7.17.0", ports="[{containerPort: 9200}]")
        + _service("kibana-es", "logs", "ClusterIP", 80, 9200)
        + _deploy("safe-es", "logs", "elasticsearch:8.12.0", ports="[{containerPort: 9200}]",
                  env="[{name: ELASTIC_PASSWORD, valueFrom: {secretKeyRef: {name: es, key: pw}}}]")
        + _service("safe-es", "logs", "ClusterIP", 80, 9200)
        + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: logs, namespace: logs}
spec:
  rules:
  - http:
      paths:
      - {path: /es, pathType: Prefix, backend: {service: {name: kibana-es, port: {number: 80}}}}
      - {path: /safe, pathType: Prefix, backend: {service: {name: safe-es, port: {number: 80}}}}
"""
        + _deploy("docker", "ci", "docker:24-dind", extra="hostNetwork: true",
                  ports="[{containerPort: 2375}]")
        + """
---
apiVersion: v1
kind: Service
metadata: {name: kubelet-direct, namespace: kube-system}
spec:
  type: NodePort
  ports: [{port: 10250, targetPort: 10250}]
"""
    )
    findings = [f for f in evaluate_exposure(snapshot_from_yaml(text)) if f.check == "sensitive-port-exposed"]
    assert pairs(findings) == {
        ("sensitive-port-exposed", "Service/data/redis"),
        ("sensitive-port-exposed", "Service/data/es"),
        ("sensitive-port-exposed", "Deployment/ci/docker"),
        ("sensitive-port-exposed", "Service/kube-system/kubelet-direct"),
        ("sensitive-port-exposed", "Ingress/logs/logs"),
    }
    by = {f.resource.name: f for f in findings}
    assert "no --requirepass" in by["redis"].evidence and by["redis"].severity == Severity.HIGH
    assert "xpack.security.enabled=false" in by["es"].evidence
    assert by["docker"].severity == Severity.CRITICAL and "hostNetwork" in by["docker"].evidence
    assert by["kubelet-direct"].severity == Severity.CRITICAL
    assert "Deployment/kibana-es" in by["logs"].evidence and "safe-es" not in by["logs"].evidence


def test_flag_value_and_label_index() -> None:
    args = ["--a=1", "--b", "two", "--c", "--d"]
    assert [flag_value(args, f) for f in ("--a", "--b", "--c", "--e")] == ["1", "two", "true", None]
    snap = snapshot_from_yaml(_deploy("x", "n1", "i:1") + _deploy("y", "n2", "i:1"))
    index = PodLabelIndex(snap.pod_templates())
    assert [p.owner.name for p in index.select("n1", {"tier": "backend"})] == ["x"]
    assert index.select("n1", {"tier": "backend", "app": "y"}) == []
    assert index.select("n1", {}) == []


def test_more_consoles_and_old_dashboard() -> None:
    text = (
        _deploy("old-dash", "kube-system", "gcr.io/google_containers/kubernetes-dashboard-amd64:v1.6.3")
        + _deploy("new-dash", "kube-system", "kubernetesui/dashboard:v2.7.0")
        + _deploy("kibana", "logs", "docker.elastic.co/kibana/kibana:7.17.0",
                  env="[{name: XPACK_SECURITY_ENABLED, value: 'false'}]")
        + _deploy("nifi", "etl", "apache/nifi:1.23.2", env="[{name: NIFI_WEB_HTTP_PORT, value: '8080'}]")
        + _deploy("kubeflow", "kubeflow", "docker.io/kubeflownotebookswg/centraldashboard:v1.8.0")
        + _service("kubeflow", "kubeflow", "LoadBalancer", 80, 8082)
        + _deploy("kubeflow-internal", "kubeflow", "docker.io/kubeflownotebookswg/centraldashboard:v1.8.0")
    )
    findings = [f for f in evaluate_exposure(snapshot_from_yaml(text)) if f.check == "unauthenticated-console"]
    assert pairs(findings) == {("unauthenticated-console", f"Deployment/{r}") for r in (
        "kube-system/old-dash", "logs/kibana", "etl/nifi", "kubeflow/kubeflow")}
    old = next(f for f in findings if f.resource.name == "old-dash")
    assert "predates login" in old.evidence
