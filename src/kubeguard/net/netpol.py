"""Kubernetes NetworkPolicy (networking.k8s.io/v1) evaluation: is a connection allowed, and by which policies.

The one implementation of NetworkPolicy semantics in kubeguard: `netpol check`, `netpol generate`'s
self-test, `scan` (missing-network-policy), `paths` (metadata API reachability) and the inline
firewall's L3/L4 decision all call it.

API::

    ev = NetpolEvaluator(snapshot)             # pods, Namespaces and NetworkPolicies of a Snapshot
    src = ev.pod("x", "a") or ev.by_ip("10.0.0.5") or Endpoint.external("203.0.113.9")
    dst = ev.pod("y", "b")
    verdict = ev.evaluate(src, dst, 80, "TCP")  # or a named port: ev.evaluate(src, dst, "http")
    verdict.allowed, verdict.deciding, verdict.reason

`evaluate` is pure (it reads only the snapshot given at construction). Invalid policies are left
out and listed in `ev.problems` (one `LoadProblem` each, naming file:line of the bad field).

Semantics, as the Kubernetes API defines them:

- A policy selects the pods of its own namespace that its `podSelector` matches (`{}`: all of
  them). Host-network pods are never selected and, as peers, are seen only by `ipBlock`.
- `policyTypes` given: those directions. Omitted or empty: Ingress always, plus Egress when
  `spec.egress` has at least one rule (the API server's defaulting).
- A pod selected for a direction by at least one policy is isolated in that direction: only what
  some rule of some selecting policy allows passes (rules and policies are additive, ORed). A pod
  selected by none is not isolated: everything passes. A policy with a direction in its types and
  no rules for it is a default deny for its pods.
- A connection needs both: egress allowed at the source pod and ingress allowed at the
  destination pod. External endpoints (IPs of no known pod) have no policies of their own.
- A rule with no `from` / `to` (or an empty list) admits every peer; with no `ports` every port.
- A peer with `podSelector` only: pods of the policy's namespace; `namespaceSelector` only: all
  pods of the namespaces it matches (`{}`: every namespace); both in one peer: pods matching both
  (AND); separate peers are ORed. Namespace labels are the Namespace object's labels, plus
  `kubernetes.io/metadata.name` (set by the API server on every namespace).
- `ipBlock` admits addresses inside `cidr` and outside every `except`. The API docs say ipBlock is
  meant for cluster-external IPs (pod IPs are ephemeral, and whether SNAT/DNAT happens before or
  after policy is implementation-defined); like the upstream e2e tests and the common CNIs, this
  evaluator matches the address actually seen, pod IPs included.
- Ports: `protocol` defaults to TCP (UDP, SCTP); `port` missing: every port of that protocol;
  a number with `endPort`: the range; a name: the destination pod's container port of that name
  and protocol (for egress rules too, resolved on the destination; an external destination has no
  named ports).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from kubeguard.cluster.manifest_fields import dicts
from kubeguard.cluster.manifests import field_source
from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.cluster.snapshot import K8sObject, LoadProblem, PodTemplate, Snapshot
from kubeguard.errors import KubeguardError

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")  # IANA_SVC_NAME, as the API checks
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetpolError(KubeguardError):
    """A NetworkPolicy, endpoint or port the evaluator cannot use; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a connection: a pod (namespace, name, labels, container ports) or an external IP."""

    namespace: str = ""
    name: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    ip: str = ""
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, containerPort, protocol) of every container port
    host_network: bool = False
    kind: str = "Pod"

    @property
    def is_pod(self) -> bool:
        return bool(self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def __str__(self) -> str:
        if not self.is_pod:
            return self.ip or "external"
        kind = "" if self.kind == "Pod" else f"{self.kind}/"
        return f"{self.namespace}/{kind}{self.name}"

    @classmethod
    def external(cls, ip: str) -> Endpoint:
        return cls(ip=ip)

    @classmethod
    def of_template(cls, pod: PodTemplate) -> Endpoint:
        """A pod as a Pod object or a controller's template would run it (IP from a Pod's status)."""
        status = pod.owner.raw.get("status") if pod.owner.kind == "Pod" else None
        ip = str(status.get("podIP") or "") if isinstance(status, dict) else ""
        ports: list[tuple[str, int, str]] = []
        for container in pod.containers(include_init=False):
            for port in dicts(container.get("ports")):
                if isinstance(port.get("containerPort"), int):
                    ports.append((str(port.get("name") or ""), port["containerPort"],
                                  str(port.get("protocol") or "TCP")))
        return cls(namespace=pod.namespace, name=pod.owner.name, kind=pod.owner.kind,
                   labels=tuple(sorted((str(k), str(v)) for k, v in pod.labels.items())), ip=ip,
                   ports=tuple(ports), host_network=pod.spec.get("hostNetwork") is True)


@dataclass(slots=True)
class Side:
    """One direction's decision: is the endpoint isolated, and which policies select / allow."""

    direction: str  # "Egress" (at the source) or "Ingress" (at the destination)
    isolated: bool = False
    selecting: list[str] = field(default_factory=list)  # policies isolating the endpoint in this direction
    allowing: list[str] = field(default_factory=list)  # of those, the ones with a rule admitting the connection

    @property
    def allowed(self) -> bool:
        return not self.isolated or bool(self.allowing)

    def to_dict(self) -> dict[str, Any]:
        return {"isolated": self.isolated, "allowed": self.allowed, "selecting": self.selecting,
                "allowing": self.allowing}


@dataclass(slots=True)
class Verdict:
    """The answer for one connection: allowed only when both egress and ingress allow it."""

    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str
    egress: Side
    ingress: Side

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def deciding(self) -> list[str]:
        """Denied: the policies isolating the denied side(s). Allowed: the policies whose rules admit it."""
        if self.allowed:
            return self.egress.allowing + self.ingress.allowing
        return [name for side in (self.egress, self.ingress) if not side.allowed for name in side.selecting]

    @property
    def reason(self) -> str:
        parts = []
        for side, who in ((self.egress, self.src), (self.ingress, self.dst)):
            if not who.is_pod:
                continue
            if not side.isolated:
                why = "host network, no policy applies" if who.host_network else f"no policy isolates {side.direction}"
            elif side.allowing:
                why = f"allowed by {', '.join(side.allowing)}"
            else:
                why = f"denied: selected by {', '.join(side.selecting)}, no rule admits it"
            parts.append(f"{side.direction.lower()} of {who}: {why}")
        return "; ".join(parts) or "no pod involved: no NetworkPolicy applies"

    def to_dict(self) -> dict[str, Any]:
        return {"from": str(self.src), "to": str(self.dst), "port": self.port, "protocol": self.protocol,
                "allowed": self.allowed, "deciding": self.deciding, "reason": self.reason,
                "egress": self.egress.to_dict(), "ingress": self.ingress.to_dict()}


@dataclass(slots=True)
class _Port:
    protocol: str
    port: int | str | None  # None: every port of the protocol
    end_port: int | None

    def admits(self, port: int, protocol: str, dst: Endpoint) -> bool:
        if protocol != self.protocol:
            return False
        if self.port is None:
            return True
        if isinstance(self.port, str):
            return any(n == self.port and p == port and proto == protocol for n, p, proto in dst.ports)
        if self.end_port is not None:
            return self.port <= port <= self.end_port
        return port == self.port


@dataclass(slots=True)
class _Peer:
    pod_selector: dict[str, Any] | None
    namespace_selector: dict[str, Any] | None
    cidr: Network | None
    excepts: list[Network]

    def admits(self, other: Endpoint, policy_ns: str, ns_labels: dict[str, dict[str, str]]) -> bool:
        if self.cidr is not None:
            try:
                address = ipaddress.ip_address(other.ip)
            except ValueError:
                return False
            return (address.version == self.cidr.version and address in self.cidr
                    and not any(address in e for e in self.excepts if e.version == address.version))
        if not other.is_pod or other.host_network:
            return False
        if self.namespace_selector is None:
            if other.namespace != policy_ns:
                return False
        elif not label_selector_selects(self.namespace_selector, _namespace_labels(other.namespace, ns_labels)):
            return False
        return self.pod_selector is None or label_selector_selects(self.pod_selector, other.label_map)


@dataclass(slots=True)
class _Rule:
    peers: list[_Peer] | None  # None: every peer
    ports: list[_Port] | None  # None: every port

    def admits(self, other: Endpoint, dst: Endpoint, port: int, protocol: str, policy_ns: str,
               ns_labels: dict[str, dict[str, str]]) -> bool:
        if self.ports is not None and not any(p.admits(port, protocol, dst) for p in self.ports):
            return False
        return self.peers is None or any(p.admits(other, policy_ns, ns_labels) for p in self.peers)


@dataclass(slots=True)
class Policy:
    """One valid NetworkPolicy, parsed."""

    namespace: str
    name: str
    pod_selector: dict[str, Any]
    types: tuple[str, ...]
    ingress: list[_Rule]
    egress: list[_Rule]
    obj: K8sObject | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: Endpoint) -> bool:
        return (pod.is_pod and not pod.host_network and pod.namespace == self.namespace
                and label_selector_selects(self.pod_selector, pod.label_map))


class NetpolEvaluator:
    """NetworkPolicy decisions over one Snapshot (see the module docstring for the semantics)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.problems: list[LoadProblem] = []
        self.policies: list[Policy] = []
        for obj in snapshot.of_kind("NetworkPolicy"):
            try:
                self.policies.append(parse_policy(obj))
            except InvalidPolicy as exc:
                where = str(field_source(obj.source, *exc.path)) if obj.source else f"NetworkPolicy {obj.name}"
                self.problems.append(LoadProblem(where, f"NetworkPolicy {obj.namespace}/{obj.name}: {exc.message}"))
        self.namespace_labels: dict[str, dict[str, str]] = {
            obj.name: {str(k): str(v) for k, v in obj.labels.items()} for obj in snapshot.of_kind("Namespace")}
        self.endpoints: list[Endpoint] = [Endpoint.of_template(t) for t in snapshot.pod_templates()]
        self._by_name = {(e.namespace, e.name): e for e in reversed(self.endpoints)}
        self._by_ip = {e.ip: e for e in self.endpoints if e.ip and not e.host_network}

    def pod(self, namespace: str, name: str) -> Endpoint | None:
        """The pod (or controller's pod template) NAMESPACE/NAME, if the snapshot has it."""
        return self._by_name.get((namespace, name))

    def by_ip(self, ip: str) -> Endpoint:
        """The pod with this IP, else an external endpoint."""
        return self._by_ip.get(ip) or Endpoint.external(ip)

    def selecting(self, pod: Endpoint, direction: str | None = None) -> list[Policy]:
        """Policies that select `pod` (for `direction` when given: "Ingress" or "Egress")."""
        return [p for p in self.policies if p.selects(pod) and (direction is None or direction in p.types)]

    def evaluate(self, src: Endpoint, dst: Endpoint, port: int | str, protocol: str = "TCP") -> Verdict:
        """Allowed / denied for a connection from `src` to `dst` on `port`/`protocol`, with its deciding policies.

        A named `port` is resolved on the destination's container ports (NetpolError when it has none).
        """
        protocol = protocol.upper()
        if protocol not in PROTOCOLS:
            raise NetpolError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        if isinstance(port, str):
            port = resolve_named_port(dst, port, protocol)
        egress = self._side("Egress", src, dst, src, port, protocol)
        ingress = self._side("Ingress", dst, src, dst, port, protocol)
        return Verdict(src, dst, port, protocol, egress, ingress)

    def _side(self, direction: str, subject: Endpoint, other: Endpoint, dst: Endpoint, port: int,
              protocol: str) -> Side:
        side = Side(direction)
        if not subject.is_pod:
            return side
        for policy in self.selecting(subject, direction):
            side.isolated = True
            side.selecting.append(policy.ref)
            rules = policy.ingress if direction == "Ingress" else policy.egress
            if any(r.admits(other, dst, port, protocol, policy.namespace, self.namespace_labels) for r in rules):
                side.allowing.append(policy.ref)
        return side


def resolve_named_port(dst: Endpoint, name: str, protocol: str = "TCP") -> int:
    """The number of `dst`'s container port called `name` (for `protocol`)."""
    if name.isdigit():
        return int(name)
    for port_name, number, proto in dst.ports:
        if port_name == name and proto == protocol:
            return number
    raise NetpolError(f"{dst}: no container port named {name!r} ({protocol})")


def _namespace_labels(namespace: str, known: dict[str, dict[str, str]]) -> dict[str, str]:
    labels = dict(known.get(namespace, {}))
    labels[NAMESPACE_NAME_LABEL] = namespace
    return labels


class InvalidPolicy(Exception):
    """A NetworkPolicy the API server would refuse: the message and the path of the bad field."""

    def __init__(self, message: str, *path: str | int) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def parse_policy(obj: K8sObject) -> Policy:
    """Parse and validate one NetworkPolicy object (raises InvalidPolicy with the bad field's path)."""
    spec = obj.raw.get("spec")
    if not isinstance(spec, dict):
        raise InvalidPolicy("`spec` is missing or not a mapping", "spec")
    selector = spec.get("podSelector")
    if not isinstance(selector, dict):
        raise InvalidPolicy("`spec.podSelector` is required (use {} to select every pod)", "spec", "podSelector")
    _check_selector(selector, "spec", "podSelector")
    types = spec.get("policyTypes")
    if types in (None, []):
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types):
        raise InvalidPolicy("`policyTypes` entries must be Ingress or Egress", "spec", "policyTypes")
    rules: dict[str, list[_Rule]] = {}
    for key, peers_key in (("ingress", "from"), ("egress", "to")):
        items = spec.get(key)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise InvalidPolicy(f"`spec.{key}` must be a list of rules", "spec", key)
        rules[key] = [_parse_rule(item, peers_key, ("spec", key, i)) for i, item in enumerate(items)]
    return Policy(obj.namespace, obj.name, selector, tuple(types), rules["ingress"], rules["egress"], obj)


def _parse_rule(item: Any, peers_key: str, path: tuple[str | int, ...]) -> _Rule:
    if item is None:
        item = {}
    if not isinstance(item, dict):
        raise InvalidPolicy("a rule must be a mapping", *path)
    peers_raw = item.get(peers_key)
    peers: list[_Peer] | None = None
    if peers_raw:
        if not isinstance(peers_raw, list):
            raise InvalidPolicy(f"`{peers_key}` must be a list of peers", *path, peers_key)
        peers = [_parse_peer(p, (*path, peers_key, i)) for i, p in enumerate(peers_raw)]
    ports_raw = item.get("ports")
    ports: list[_Port] | None = None
    if ports_raw:
        if not isinstance(ports_raw, list):
            raise InvalidPolicy("`ports` must be a list", *path, "ports")
        ports = [_parse_port(p, (*path, "ports", i)) for i, p in enumerate(ports_raw)]
    return _Rule(peers, ports)


def _parse_peer(raw: Any, path: tuple[str | int, ...]) -> _Peer:
    if not isinstance(raw, dict) or not any(k in raw for k in ("podSelector", "namespaceSelector", "ipBlock")):
        raise InvalidPolicy("a peer needs podSelector, namespaceSelector or ipBlock", *path)
    block = raw.get("ipBlock")
    if block is not None:
        if "podSelector" in raw or "namespaceSelector" in raw:
            raise InvalidPolicy("ipBlock cannot be combined with podSelector or namespaceSelector in one peer", *path)
        if not isinstance(block, dict):
            raise InvalidPolicy("ipBlock must be a mapping", *path, "ipBlock")
        cidr = _network(block.get("cidr"), (*path, "ipBlock", "cidr"))
        excepts = []
        for i, text in enumerate(block.get("except") or []):
            net = _network(text, (*path, "ipBlock", "except", i))
            if net.version != cidr.version or not net.subnet_of(cidr):  # type: ignore[arg-type]
                raise InvalidPolicy(f"except {text!r} is not inside cidr {block.get('cidr')!r}",
                                    *path, "ipBlock", "except", i)
            excepts.append(net)
        return _Peer(None, None, cidr, excepts)
    selectors: dict[str, dict[str, Any] | None] = {}
    for key in ("podSelector", "namespaceSelector"):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise InvalidPolicy(f"{key} must be a mapping", *path, key)
            _check_selector(value, *path, key)
        selectors[key] = value
    return _Peer(selectors["podSelector"], selectors["namespaceSelector"], None, [])


def _network(text: Any, path: tuple[str | int, ...]) -> Network:
    if not isinstance(text, str) or "/" not in text:
        raise InvalidPolicy(f"{text!r} is not a CIDR (like 10.0.0.0/8)", *path)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidPolicy(f"{text!r} is not a CIDR: {exc}", *path) from exc


def _parse_port(raw: Any, path: tuple[str | int, ...]) -> _Port:
    if not isinstance(raw, dict):
        raise InvalidPolicy("a port entry must be a mapping", *path)
    protocol = raw.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise InvalidPolicy(f"protocol {protocol!r}: expected TCP, UDP or SCTP", *path, "protocol")
    port = raw.get("port")
    end_port = raw.get("endPort")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int | str):
            raise InvalidPolicy(f"port {port!r}: expected a number or a port name", *path, "port")
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise InvalidPolicy(f"port {port}: out of range 1-65535", *path, "port")
        if isinstance(port, str) and not _PORT_NAME.match(port):
            raise InvalidPolicy(f"port {port!r}: not a valid port name (IANA_SVC_NAME)", *path, "port")
    if end_port is not None:
        if not isinstance(port, int):
            raise InvalidPolicy("endPort needs a numeric port", *path, "endPort")
        if isinstance(end_port, bool) or not isinstance(end_port, int) or not port <= end_port <= 65535:
            raise InvalidPolicy(f"endPort {end_port!r}: must be a number from port ({port}) to 65535",
                                *path, "endPort")
    return _Port(protocol, port, end_port)


def _check_selector(selector: dict[str, Any], *path: str | int) -> None:
    labels = selector.get("matchLabels")
    if labels is not None and not isinstance(labels, dict):
        raise InvalidPolicy("matchLabels must be a mapping", *path, "matchLabels")
    exprs = selector.get("matchExpressions")
    if exprs is None:
        return
    if not isinstance(exprs, list):
        raise InvalidPolicy("matchExpressions must be a list", *path, "matchExpressions")
    for i, expr in enumerate(exprs):
        where = (*path, "matchExpressions", i)
        if not isinstance(expr, dict) or not expr.get("key"):
            raise InvalidPolicy("a match expression needs a key", *where)
        operator = expr.get("operator")
        if operator not in _OPERATORS:
            raise InvalidPolicy(f"operator {operator!r}: expected one of {', '.join(_OPERATORS)}",
                                *where, "operator")
        values = expr.get("values")
        if operator in ("In", "NotIn") and not values:
            raise InvalidPolicy(f"operator {operator} needs non-empty values", *where)
        if operator in ("Exists", "DoesNotExist") and values:
            raise InvalidPolicy(f"operator {operator} takes no values", *where, "values")
