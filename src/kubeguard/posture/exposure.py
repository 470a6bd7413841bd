"""Exposure checks: what is reachable from outside the cluster, and what answers there.

Entry points are Services of type NodePort or LoadBalancer or with externalIPs, Ingresses (through
the Services they route to), container hostPorts and host-network pods. Each is resolved once to
the pods behind it (Service selector -> pod templates, through a label index), then:

- `exposed-service`: every entry point, with what is behind it;
- `unauthenticated-console`: a known admin UI whose authentication is switched off (Kubernetes
  Dashboard `--enable-skip-login`, Argo `--auth-mode=server`, Jupyter with an empty token, Grafana
  anonymous admin, ...) or that has none by design and is exposed (Weave Scope, Kubeflow's
  dashboard); critical when the pod's service account is powerful: the Tesla finding;
- `sensitive-port-exposed`: a port that must never face the outside (kubelet, etcd, Docker,
  the insecure API port) or a datastore/monitoring port without its authentication switches.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeguard.cluster.manifest_fields import as_dict, dicts, strings
from kubeguard.cluster.selectors import PodLabelIndex
from kubeguard.cluster.snapshot import K8sObject, PodTemplate, Snapshot
from kubeguard.model import Finding, Severity
from kubeguard.posture.rbac import Subject
from kubeguard.posture.rbac_checks import dangerous_rights, rbac_index, rights_names
from kubeguard.posture.registry import PostureCheck, evaluator, register
from kubeguard.posture.workload_checks import workload_of

E = "exposure"
EXPOSED_SERVICE = PostureCheck(
    "exposed-service", E, "Reachable from outside the cluster", Severity.MEDIUM,
    "Expose only what must face users, through an Ingress with authentication and TLS; use ClusterIP "
    "for everything else and restrict source ranges (loadBalancerSourceRanges).",
    ("T1133",),
)
UNAUTHENTICATED_CONSOLE = PostureCheck(
    "unauthenticated-console", E, "Admin console without authentication", Severity.HIGH,
    "Turn authentication on (remove --enable-skip-login / --enable-insecure-login, auth-mode client/sso, "
    "set a token), never expose consoles publicly, and give their service account read-only rights.",
    ("T1133", "T1078", "MS-TA9005"),
)
SENSITIVE_PORT = PostureCheck(
    "sensitive-port-exposed", E, "Sensitive port exposed without authentication", Severity.HIGH,
    "Keep node, etcd and runtime ports off Services and hostPorts; turn on the datastore's authentication "
    "(requirepass, --auth, xpack security) and restrict access with NetworkPolicy.",
    ("T1133", "MS-TA9005"),
)
register(EXPOSED_SERVICE, UNAUTHENTICATED_CONSOLE, SENSITIVE_PORT)


def container_command(container: dict[str, Any]) -> list[str]:
    """command + args as one argument list."""
    out: list[str] = []
    for key in ("command", "args"):
        out.extend(strings(container.get(key)))
    return out


def flag_value(args: list[str], flag: str) -> str | None:
    """Value of `--flag=value` or `--flag value`; "true" for a bare boolean flag; None when absent."""
    for i, arg in enumerate(args):
        if arg == flag:
            nxt = args[i + 1] if i + 1 < len(args) else ""
            return nxt if nxt and not nxt.startswith("-") else "true"
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def env_literals(container: dict[str, Any]) -> dict[str, str]:
    """Env vars set (literally or by reference) in the container: name -> literal value ('' for a reference)."""
    out: dict[str, str] = {}
    for env in dicts(container.get("env")):
        if env.get("name"):
            out[str(env["name"])] = str(env.get("value", "")) if "value" in env else "<from reference>"
    return out


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().strip("'\"").lower() in ("true", "1", "yes")


def _empty(value: str | None) -> bool:
    return value is not None and value.strip().strip("'\"") == ""


# --- consoles: (name, image/command pattern, why auth is off or None, needs exposure to count) ---

def _dashboard(container: dict[str, Any]) -> str | None:
    args = container_command(container)
    for flag in ("--enable-skip-login", "--enable-insecure-login"):
        value = flag_value(args, flag)
        if value is not None and _truthy(value):
            return f"{flag}={value}"
    tag = str(container.get("image", "")).rsplit(":", 1)[-1]
    version = re.match(r"v?1\.([0-6])\.", tag)
    if version:
        return f"dashboard {tag} predates login support (v1.7)"
    return None


def _argo(container: dict[str, Any]) -> str | None:
    args = container_command(container)
    modes = [a.split("=", 1)[1] for a in args if a.startswith("--auth-mode=")]
    modes += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--auth-mode"]
    return "--auth-mode=server (every caller acts as the server's service account)" if "server" in modes else None


def _jupyter(container: dict[str, Any]) -> str | None:
    args = container_command(container)
    for flag in ("--NotebookApp.token", "--ServerApp.token", "--IdentityProvider.token"):
        value = flag_value(args, flag)
        if _empty(value):
            password = flag_value(args, flag.replace("token", "password").replace("IdentityProvider", "ServerApp"))
            if password is None or _empty(password):
                return f"{flag}='' and no password"
    env = env_literals(container)
    if "JUPYTER_TOKEN" in env and env["JUPYTER_TOKEN"] == "":
        return "JUPYTER_TOKEN is empty"
    return None


def _grafana(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    role = env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer")
    if _truthy(env.get("GF_AUTH_ANONYMOUS_ENABLED")) and role in ("Admin", "Editor"):
        return f"GF_AUTH_ANONYMOUS_ENABLED=true with GF_AUTH_ANONYMOUS_ORG_ROLE={role}"
    return None


def _kibana(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    for name in ("XPACK_SECURITY_ENABLED", "xpack.security.enabled"):
        if name in env and env[name].lower() == "false":
            return f"{name}=false"
    return None


def _nifi(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    if "NIFI_WEB_HTTP_PORT" in env and "NIFI_WEB_HTTPS_PORT" not in env:
        return "NIFI_WEB_HTTP_PORT set: plain HTTP mode has no authentication"
    return None


def _by_design(_: dict[str, Any]) -> str | None:
    return "has no authentication of its own"


@dataclass(frozen=True, slots=True)
class Console:
    """A known admin UI: how to recognise it, how to tell its authentication is off."""

    name: str
    pattern: re.Pattern[str]
    auth_off: Callable[[dict[str, Any]], str | None]
    needs_exposure: bool = False  # no auth by design: only a finding when reachable from outside


CONSOLES: tuple[Console, ...] = (
    Console("Kubernetes Dashboard", re.compile(r"kubernetes-?dashboard|kubernetesui/dashboard"), _dashboard),
    Console("Argo Workflows server", re.compile(r"argoproj/(argocli|argo-server)|argo-server"), _argo),
    Console("Jupyter", re.compile(r"jupyter|notebook"), _jupyter),
    Console("Grafana", re.compile(r"grafana/grafana|/grafana:|^grafana"), _grafana),
    Console("Kibana", re.compile(r"kibana"), _kibana),
    Console("Apache NiFi", re.compile(r"apache/nifi|/nifi:"), _nifi),
    Console("Weave Scope", re.compile(r"weaveworks/scope"), _by_design, needs_exposure=True),
    Console("Kubeflow central dashboard", re.compile(r"centraldashboard"), _by_design, needs_exposure=True),
)


# --- sensitive ports: (port, what, pattern the container must match or None, why auth is missing) ---

def _always(_: dict[str, Any]) -> str | None:
    return "no authentication on this port"


def _redis(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    if flag_value(container_command(container), "--requirepass") or "REDIS_PASSWORD" in env or (
            "REDIS_PASSWORD_FILE" in env):
        return None
    return "no --requirepass and no REDIS_PASSWORD"


def _mongo(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    passwords = ("MONGO_INITDB_ROOT_PASSWORD", "MONGODB_ROOT_PASSWORD", "MONGO_INITDB_ROOT_PASSWORD_FILE")
    if flag_value(container_command(container), "--auth") is not None or any(k in env for k in passwords):
        return None
    return "no --auth and no root password"


def _elasticsearch(container: dict[str, Any]) -> str | None:
    env = env_literals(container)
    security = env.get("xpack.security.enabled", env.get("XPACK_SECURITY_ENABLED"))
    if security is not None and security.lower() == "false":
        return "xpack.security.enabled=false"
    if security is None and "ELASTIC_PASSWORD" not in env:
        return "xpack.security.enabled not set and no ELASTIC_PASSWORD"
    return None


def _prometheus(container: dict[str, Any]) -> str | None:
    return None if flag_value(container_command(container), "--web.config.file") else "no --web.config.file (no auth)"


@dataclass(frozen=True, slots=True)
class SensitivePort:
    """A port that must not face the outside without authentication."""

    port: int
    what: str
    missing_auth: Callable[[dict[str, Any]], str | None]
    pattern: re.Pattern[str] | None = None  # for ports other software uses too
    critical: bool = False


SENSITIVE_PORTS: tuple[SensitivePort, ...] = (
    SensitivePort(10250, "kubelet API", _always, critical=True),
    SensitivePort(10255, "kubelet read-only API", _always, critical=True),
    SensitivePort(2379, "etcd client API", _always, critical=True),
    SensitivePort(2380, "etcd peer API", _always, critical=True),
    SensitivePort(2375, "Docker API (plain TCP)", _always, critical=True),
    SensitivePort(8080, "kube-apiserver insecure port", _always, re.compile(r"kube-apiserver"), critical=True),
    SensitivePort(6379, "Redis", _redis),
    SensitivePort(27017, "MongoDB", _mongo),
    SensitivePort(9200, "Elasticsearch", _elasticsearch, re.compile(r"elasticsearch|opensearch")),
    SensitivePort(8888, "Jupyter", _jupyter, re.compile(r"jupyter|notebook")),
    SensitivePort(9090, "Prometheus", _prometheus, re.compile(r"prometheus")),
    SensitivePort(11211, "memcached", _always, re.compile(r"memcached")),
)
PORTS_BY_NUMBER: dict[int, list[SensitivePort]] = defaultdict(list)
for _rule in SENSITIVE_PORTS:
    PORTS_BY_NUMBER[_rule.port].append(_rule)


def identity_text(container: dict[str, Any]) -> str:
    """Image and command line of a container, lower-cased: what patterns recognise software by."""
    return " ".join([str(container.get("image", "")), *container_command(container)]).lower()


# --- entry points ---

def _service_ports(service: K8sObject) -> list[dict[str, Any]]:
    return dicts(service.spec.get("ports"))


def _port_text(port: dict[str, Any]) -> str:
    text = f"{port.get('port')}"
    target = port.get("targetPort")
    if target is not None and target != port.get("port"):
        text += f"->{target}"
    text += f"/{port.get('protocol', 'TCP')}"
    if port.get("nodePort"):
        text += f" (nodePort {port['nodePort']})"
    return text


def _backends(pods: list[PodTemplate]) -> str:
    if not pods:
        return "no pods in the snapshot match its selector"
    names = ", ".join(f"{p.owner.kind}/{p.owner.name}" for p in pods[:5])
    return f"backs {names}" + (f" and {len(pods) - 5} more" if len(pods) > 5 else "")


def _external_kind(service: K8sObject) -> str:
    kind = str(service.spec.get("type", "ClusterIP"))
    external_ips = strings(service.spec.get("externalIPs"))
    if kind in ("NodePort", "LoadBalancer"):
        return f"type {kind}" + (f" with externalIPs {','.join(map(str, external_ips))}" if external_ips else "")
    if external_ips:
        return f"externalIPs {','.join(map(str, external_ips))}"
    return ""


def _ingress_services(ingress: K8sObject) -> Iterator[tuple[str, str, Any]]:
    """(route text, service name, service port) for every backend of an Ingress (v1 and v1beta1)."""
    default = ingress.spec.get("defaultBackend") or ingress.spec.get("backend")
    if isinstance(default, dict):
        name, port = _backend_target(default)
        if name:
            yield "default backend", name, port
    for rule in dicts(ingress.spec.get("rules")):
        host = str(rule.get("host") or "*")
        for path in dicts(as_dict(rule.get("http")).get("paths")):
            if isinstance(path.get("backend"), dict):
                name, port = _backend_target(path["backend"])
                if name:
                    yield f"{host}{path.get('path', '/')}", name, port


def _backend_target(backend: dict[str, Any]) -> tuple[str, Any]:
    service = backend.get("service")
    if isinstance(service, dict):
        raw_port = service.get("port")
        port: dict[str, Any] = raw_port if isinstance(raw_port, dict) else {}
        return str(service.get("name") or ""), port.get("number") or port.get("name")
    return str(backend.get("serviceName") or ""), backend.get("servicePort")


@evaluator
def evaluate_exposure(snapshot: Snapshot) -> Iterator[Finding]:
    """exposed-service, unauthenticated-console and sensitive-port-exposed for the snapshot."""
    pods = PodLabelIndex(snapshot.pod_templates())
    exposures: dict[int, list[str]] = defaultdict(list)  # id(pod template) -> routes from outside
    sensitive: list[Finding] = []
    services = {(s.namespace, s.name): s for s in snapshot.of_kind("Service")}
    service_pods = {key: pods.select(svc.namespace, svc.spec.get("selector")) for key, svc in services.items()}

    for key, service in services.items():
        how = _external_kind(service)
        if not how:
            continue
        backing = service_pods[key]
        ports = _service_ports(service)
        evidence = f"{how}, ports {', '.join(_port_text(p) for p in ports) or 'none'}; {_backends(backing)}"
        severity = Severity.LOW if str(service.spec.get("type")) == "NodePort" and not backing else None
        yield EXPOSED_SERVICE.finding(service, evidence, severity=severity)
        route = f"Service/{service.namespace}/{service.name} ({how})"
        _mark(exposures, backing, route)
        found = _sensitive_finding(service, *_sensitive_lines(ports, backing, route))
        if found:
            sensitive.append(found)

    for ingress in snapshot.of_kind("Ingress"):
        lines = []
        port_lines: list[str] = []
        critical = False
        for where, name, port in _ingress_services(ingress):
            backend = services.get((ingress.namespace, name))
            backing = service_pods.get((ingress.namespace, name), [])
            lines.append(f"{where} -> Service/{name}:{port}; {_backends(backing)}")
            route = f"Ingress/{ingress.namespace}/{ingress.name} ({where})"
            _mark(exposures, backing, route)
            if backend is None:
                lines[-1] += " (Service not in the snapshot)"
                continue
            reached = [p for p in _service_ports(backend) if port_ref(port) in (p.get("port"), p.get("name"))]
            more, is_critical = _sensitive_lines(reached, backing, route)
            port_lines += more
            critical = critical or is_critical
        if lines:
            yield EXPOSED_SERVICE.finding(ingress, "; ".join(lines))
        found = _sensitive_finding(ingress, port_lines, critical)
        if found:
            sensitive.append(found)

    for pod in pods.pods:
        host_ports = [(c, p) for c in pod.containers() for p in dicts(c.get("ports")) if p.get("hostPort")]
        if host_ports:
            text = ", ".join(f"container {c.get('name')}: hostPort {p['hostPort']}->{p.get('containerPort')}"
                             for c, p in host_ports)
            yield EXPOSED_SERVICE.finding(pod.owner, text, severity=Severity.LOW, workload=workload_of(pod))
            _mark(exposures, [pod], "hostPort on the node's address")
        if pod.spec.get("hostNetwork") is True:
            _mark(exposures, [pod], "hostNetwork (listens on the node's address)")
    yield from sensitive
    yield from _pod_sensitive_ports(pods.pods)
    yield from _console_findings(snapshot, pods.pods, exposures)


def _mark(exposures: dict[int, list[str]], pods: list[PodTemplate], route: str) -> None:
    """Record that `pods` are reachable from outside through `route`."""
    for pod in pods:
        if route not in exposures[id(pod)]:
            exposures[id(pod)].append(route)


def port_ref(value: Any) -> int | str | None:
    """A port given as a number or a name; None for anything else."""
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | str) else None


def _containers_on(pod: PodTemplate, port: int | str) -> list[tuple[dict[str, Any], int]]:
    """(container, port number) that a target port (number or name) reaches in a pod."""
    out = []
    for container in pod.containers(include_init=False):
        for entry in dicts(container.get("ports")):
            if port in (entry.get("containerPort"), entry.get("name")):
                number = entry.get("containerPort")
                if isinstance(number, int):
                    out.append((container, number))
    if not out and isinstance(port, int):  # undeclared port: any container may listen on it
        out = [(c, port) for c in pod.containers(include_init=False)]
    return out


def _sensitive_hits(container: dict[str, Any], port: int) -> Iterator[tuple[SensitivePort, str]]:
    for rule in PORTS_BY_NUMBER.get(port, ()):
        if rule.pattern and not rule.pattern.search(identity_text(container)):
            continue
        why = rule.missing_auth(container)
        if why:
            yield rule, why


def _sensitive_finding(resource: K8sObject, lines: list[str], critical: bool) -> Finding | None:
    """sensitive-port-exposed on a Service or Ingress, from the lines of `_sensitive_lines`."""
    if not lines:
        return None
    return SENSITIVE_PORT.finding(resource, "; ".join(sorted(set(lines))),
                                  severity=Severity.CRITICAL if critical else None)


def _sensitive_lines(ports: list[dict[str, Any]], backing: list[PodTemplate], route: str) -> tuple[list[str], bool]:
    """Evidence lines for the sensitive ports a Service's `ports` reach, and whether one is critical."""
    lines: list[str] = []
    critical = False
    for entry in ports:
        port = port_ref(entry.get("port"))
        target = port_ref(entry.get("targetPort")) or port
        if target is None:
            continue
        if not backing:  # no selector: endpoints point outside the snapshot (often at nodes)
            for number in {p for p in (port, target) if isinstance(p, int)} & PORTS_BY_NUMBER.keys():
                for rule in PORTS_BY_NUMBER[number]:
                    if rule.pattern is None:
                        lines.append(f"port {number} ({rule.what}) exposed by {route}")
                        critical = critical or rule.critical
            continue
        for pod in backing:
            for container, number in _containers_on(pod, target):
                for rule, why in _sensitive_hits(container, number):
                    lines.append(f"port {number} ({rule.what}) of {pod.owner.kind}/{pod.owner.name} "
                                 f"container {container.get('name')}: {why}")
                    critical = critical or rule.critical
    return lines, critical


def _pod_sensitive_ports(pods: list[PodTemplate]) -> Iterator[Finding]:
    """sensitive-port-exposed on workloads listening on the node: hostPort or hostNetwork."""
    for pod in pods:
        lines: list[str] = []
        critical = False
        for container in pod.containers(include_init=False):
            for entry in dicts(container.get("ports")):
                number = entry.get("containerPort")
                if not isinstance(number, int):
                    continue
                if not (pod.spec.get("hostNetwork") is True or entry.get("hostPort")):
                    continue
                for rule, why in _sensitive_hits(container, number):
                    lines.append(f"container {container.get('name')} port {number} ({rule.what}) on the node "
                                 f"via {'hostNetwork' if pod.spec.get('hostNetwork') else 'hostPort'}: {why}")
                    critical = critical or rule.critical
        if lines:
            yield SENSITIVE_PORT.finding(pod.owner, "; ".join(lines), workload=workload_of(pod),
                                         severity=Severity.CRITICAL if critical else None)


def _console_findings(snapshot: Snapshot, pods: list[PodTemplate],
                      exposures: dict[int, list[str]]) -> Iterator[Finding]:
    """unauthenticated-console, rated critical when the console's service account is powerful."""
    index = None
    for pod in pods:
        exposure = exposures.get(id(pod))
        for container in pod.containers(include_init=False):
            text = identity_text(container)
            for console in CONSOLES:
                if not console.pattern.search(text):
                    continue
                why = console.auth_off(container)
                if not why or (console.needs_exposure and not exposure):
                    continue
                if index is None:
                    index = rbac_index(snapshot)
                subject = Subject("ServiceAccount", pod.service_account, pod.namespace)
                rights = dangerous_rights(index, subject, inherited=True)
                reach = f"exposed via {'; '.join(exposure)}" if exposure else "not exposed outside the cluster"
                powers = (f"service account {pod.namespace}/{pod.service_account} holds "
                          f"{', '.join(rights_names(rights))}") if rights else (
                    f"service account {pod.namespace}/{pod.service_account} has no dangerous rights")
                evidence = f"{console.name} in container {container.get('name')}: {why}; {reach}; {powers}"
                severity = Severity.CRITICAL if rights else None
                yield UNAUTHENTICATED_CONSOLE.finding(pod.owner, evidence, severity=severity,
                                                      workload=workload_of(pod, container))
                break
