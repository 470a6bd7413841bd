"""Per-workload protocol allow-lists: which L7 protocols a workload may speak, to whom, on which ports.

The model follows Cilium's L7 policy (CiliumNetworkPolicy) closely, kept small:

    policies:
      - name: web
        namespace: shop
        endpointSelector: {matchLabels: {app: web}}      # LabelSelector, pods of `namespace`
        mode: protect                                    # discover | monitor | protect
        ingress:
          - fromEndpoints: [{matchLabels: {app: client}}]
            toPorts:
              - ports: [{port: "8080", protocol: TCP}]
                protocols: [http]
                rules:
                  http: [{method: "GET|POST", path: "/api/.*", host: "shop\\.example"}]
        egress:
          - toEndpoints: [{matchLabels: {app: db}}]
            toPorts: [{ports: [{port: "5432"}], protocols: [postgresql]}]
          - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
            toPorts: [{ports: [{port: "53", protocol: ANY}], protocols: [dns]}]
          - toCIDR: [0.0.0.0/0]
            toPorts: [{ports: [{port: "443"}], protocols: [tls]}]

Semantics (Cilium's where it has one): policies selecting a pod add up; a direction with at least one
rule is default-deny for that pod, a direction without rules is open. A rule allows a peer (endpoint
selectors, default namespace the policy's own, `io.kubernetes.pod.namespace` to name another; CIDRs;
entities `all`, `world`, `cluster`; no peer field = any peer) on its ports (none = all). `protocols`
names the L7 protocols allowed there (the DPI engine's names; `https` = `tls`; `http` also covers
HTTP APIs the engine names elasticsearch / etcd); none = any. `rules.http` restricts HTTP requests:
each request must match one entry (method, path and host are regular expressions matched against the
whole value, `headers` are `Name: value` lines that must be present). A connection must be allowed by
the egress side of its client's pod and the ingress side of its server's pod.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.errors import KubeguardError
from kubeguard.model import Workload

MODES = ("discover", "monitor", "protect")
NAMESPACE_LABELS = ("io.kubernetes.pod.namespace", "k8s:io.kubernetes.pod.namespace")
ENTITIES = ("all", "world", "cluster")
ALIASES = {"https": "tls", "postgres": "postgresql", "ssl": "tls"}
HTTP_FAMILY = {"http": ("http", "elasticsearch", "etcd")}


class AllowListError(KubeguardError):
    """The allow-list file is unreadable or wrong; the message names file:line and the problem."""


class _LineLoader(yaml.SafeLoader):
    """YAML loader whose mappings remember their line (for file:line messages)."""


class _LineDict(dict[Any, Any]):
    line = 0


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(slots=True)
class HttpRule:
    """One allowed HTTP request shape (Cilium's PortRuleHTTP)."""

    method: re.Pattern[str] | None = None
    path: re.Pattern[str] | None = None
    host: re.Pattern[str] | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def allows(self, method: str, path: str, host: str, headers: list[tuple[str, str]]) -> bool:
        if self.method is not None and not self.method.fullmatch(method):
            return False
        if self.path is not None and not self.path.fullmatch(path):
            return False
        if self.host is not None and not self.host.fullmatch(host):
            return False
        have = {(k.lower(), v.strip()) for k, v in headers}
        return all((k.lower(), v) in have for k, v in self.headers)


@dataclass(slots=True)
class PortRule:
    """Ports (with L4 protocol), the L7 protocols allowed on them, and optional HTTP rules."""

    ports: tuple[tuple[int, int, str], ...] = ()  # (port, endPort, TCP|UDP|ANY); empty = all ports
    protocols: frozenset[str] | None = None  # None = any L7 protocol
    http: tuple[HttpRule, ...] = ()

    def port_matches(self, port: int, l4: str) -> bool:
        if not self.ports:
            return True
        return any(lo <= port <= hi and proto in ("ANY", l4.upper()) for lo, hi, proto in self.ports)

    def protocol_allowed(self, proto: str) -> bool:
        return self.protocols is None or proto in self.protocols


@dataclass(slots=True)
class Rule:
    """One ingress or egress rule: peers and port rules."""

    endpoints: tuple[tuple[str | None, dict[str, Any]], ...] | None = None  # (namespace or None=any, selector)
    cidrs: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[Any, ...]], ...] | None = None
    entities: frozenset[str] | None = None
    to_ports: tuple[PortRule, ...] = ()

    def peer_matches(self, ip: str, peer: Workload | None) -> bool:
        if self.endpoints is None and self.cidrs is None and self.entities is None:
            return True
        if self.entities and ("all" in self.entities or ("world" in self.entities and peer is None)
                              or ("cluster" in self.entities and peer is not None)):
            return True
        if self.endpoints is not None and peer is not None:
            labels = dict(peer.labels)
            for namespace, selector in self.endpoints:
                if (namespace is None or namespace == peer.namespace) and label_selector_selects(selector, labels):
                    return True
        if self.cidrs is not None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            for net, excepts in self.cidrs:
                if addr.version == net.version and addr in net and not any(addr in e for e in excepts):
                    return True
        return False

    def port_rules(self, port: int, l4: str) -> list[PortRule]:
        """The port rules of this rule that cover `port` (a rule without toPorts covers everything)."""
        if not self.to_ports:
            return [PortRule()]
        return [p for p in self.to_ports if p.port_matches(port, l4)]


@dataclass(slots=True)
class Policy:
    """One allow-list entry: which pods it selects, their mode, and their ingress / egress rules."""

    name: str
    namespace: str
    selector: dict[str, Any]
    mode: str = "protect"
    ingress: tuple[Rule, ...] | None = None  # None: this policy says nothing about ingress
    egress: tuple[Rule, ...] | None = None
    source: str = ""

    def selects(self, workload: Workload) -> bool:
        return workload.namespace == self.namespace and label_selector_selects(self.selector, dict(workload.labels))


@dataclass(slots=True)
class Decision:
    """What the allow-list says about a connection (or one HTTP request on it)."""

    allowed: bool
    reason: str = ""
    side: str = ""  # "egress" (the client's policy decides) or "ingress" (the server's)
    policy: str = ""


@dataclass(slots=True)
class ConnectionGrant:
    """The port rules that let a connection start, per side; narrowed by protocol, then per HTTP request."""

    egress: list[PortRule] | None  # None: that side is open (no policy with rules in that direction)
    ingress: list[PortRule] | None
    egress_policy: str = ""
    ingress_policy: str = ""


@dataclass(slots=True)
class AllowList:
    """Every policy of an allow-list file."""

    policies: list[Policy] = field(default_factory=list)

    def policies_for(self, workload: Workload | None) -> list[Policy]:
        if workload is None:
            return []
        return [p for p in self.policies if p.selects(workload)]

    def mode_for(self, workload: Workload | None, default: str) -> str:
        """The strictest mode among the policies selecting `workload` (`default` when none does)."""
        modes = [p.mode for p in self.policies_for(workload)]
        return max(modes, key=MODES.index) if modes else default

    # ---- connection start ----------------------------------------------------------------

    def grant(self, cip: str, client: Workload | None, sip: str, server: Workload | None, port: int,
              l4: str) -> ConnectionGrant | Decision:
        """Port rules allowing this connection on each side, or a deny Decision."""
        egress = ingress = None
        egress_name = ingress_name = ""
        policies = self.policies_for(client)
        rules = [(p, r) for p in policies if p.egress is not None for r in p.egress]
        if any(p.egress is not None for p in policies):
            egress = [pr for p, r in rules if r.peer_matches(sip, server) for pr in r.port_rules(port, l4)]
            egress_name = ",".join(sorted({p.name for p in policies if p.egress is not None}))
            if not egress:
                return Decision(False, f"egress to {_peer(sip, server)}:{port}/{l4} not allowed", "egress",
                                egress_name)
        policies = self.policies_for(server)
        rules = [(p, r) for p in policies if p.ingress is not None for r in p.ingress]
        if any(p.ingress is not None for p in policies):
            ingress = [pr for p, r in rules if r.peer_matches(cip, client) for pr in r.port_rules(port, l4)]
            ingress_name = ",".join(sorted({p.name for p in policies if p.ingress is not None}))
            if not ingress:
                return Decision(False, f"ingress from {_peer(cip, client)} to port {port}/{l4} not allowed",
                                "ingress", ingress_name)
        return ConnectionGrant(egress, ingress, egress_name, ingress_name)

    # ---- once the protocol is known ------------------------------------------------------------

    @staticmethod
    def protocol(grant: ConnectionGrant, proto: str) -> Decision:
        """Narrow `grant` to the port rules allowing L7 protocol `proto`; deny when none is left."""
        for side in ("egress", "ingress"):
            rules = getattr(grant, side)
            if rules is None:
                continue
            kept = [r for r in rules if r.protocol_allowed(proto)]
            if not kept:
                allowed = sorted({p for r in rules for p in (r.protocols or ())})
                return Decision(False, f"protocol {proto} not allowed here (allowed: {', '.join(allowed) or 'none'})",
                                side, getattr(grant, f"{side}_policy"))
            setattr(grant, side, kept)
        return Decision(True)

    @staticmethod
    def http_request(grant: ConnectionGrant, method: str, path: str, host: str,
                     headers: list[tuple[str, str]]) -> Decision:
        """One HTTP request on a granted connection: allowed when every side with HTTP rules has a match."""
        for side in ("egress", "ingress"):
            rules = getattr(grant, side)
            if rules is None or any(not r.http for r in rules):
                continue  # this side allows any request
            if not any(h.allows(method, path, host, headers) for r in rules for h in r.http):
                return Decision(False, f"HTTP {method} {path[:200]} (host {host[:100] or '-'}) not allowed",
                                side, getattr(grant, f"{side}_policy"))
        return Decision(True)


def _peer(ip: str, workload: Workload | None) -> str:
    return f"{workload.namespace}/{workload.pod}" if workload else ip


# ---- loading -------------------------------------------------------------------------------------

def load(path: Path) -> AllowList:
    """Read an allow-list file; AllowListError names file:line on any problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AllowListError(f"{path}: cannot read allow-list: {exc.strerror or exc}") from exc
    return parse(text, str(path))


def parse(text: str, name: str = "<allow-list>") -> AllowList:
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise AllowListError(f"{where}: not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise AllowListError(f"{name}: not valid YAML: {exc}") from exc
    if data is None:
        return AllowList()
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list):
        raise AllowListError(f"{name}:1: expected a mapping with a `policies:` list")
    unknown = set(data) - {"policies", "apiVersion", "kind"}
    if unknown:
        raise AllowListError(f"{name}:{getattr(data, 'line', 1)}: unknown key {sorted(unknown)[0]!r}")
    return AllowList([_policy(p, name, i) for i, p in enumerate(data["policies"])])


def _fail(name: str, node: Any, message: str) -> AllowListError:
    return AllowListError(f"{name}:{getattr(node, 'line', 0) or '?'}: {message}")


def _policy(node: Any, name: str, index: int) -> Policy:
    if not isinstance(node, dict):
        raise _fail(name, node, f"policies[{index}]: expected a mapping")
    unknown = set(node) - {"name", "namespace", "endpointSelector", "mode", "ingress", "egress"}
    label = f"policy {node.get('name') or index!s}"
    if unknown:
        raise _fail(name, node, f"{label}: unknown key {sorted(unknown)[0]!r}")
    selector = node.get("endpointSelector")
    if not isinstance(selector, dict):
        raise _fail(name, node, f"{label}: endpointSelector must be a LabelSelector mapping ({{}} selects all pods)")
    _check_selector(name, selector, label)
    mode = str(node.get("mode", "protect"))
    if mode not in MODES:
        raise _fail(name, node, f"{label}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    policy = Policy(name=str(node.get("name") or f"policy-{index}"), namespace=str(node.get("namespace") or "default"),
                    selector=dict(selector), mode=mode, source=f"{name}:{getattr(node, 'line', 0)}")
    for direction in ("ingress", "egress"):
        if direction in node:
            rules = node[direction]
            if rules is None:
                rules = []
            if not isinstance(rules, list):
                raise _fail(name, node, f"{label}: {direction} must be a list of rules")
            setattr(policy, direction, tuple(_rule(r, name, label, direction, policy.namespace) for r in rules))
    return policy


def _check_selector(name: str, selector: dict[str, Any], label: str) -> None:
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise _fail(name, selector, f"{label}: selector has unknown key {sorted(unknown)[0]!r}")
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict) or expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise _fail(name, expr if isinstance(expr, dict) else selector,
                        f"{label}: matchExpressions operator must be In, NotIn, Exists or DoesNotExist")


def _rule(node: Any, name: str, label: str, direction: str, namespace: str) -> Rule:
    if not isinstance(node, dict):
        raise _fail(name, node, f"{label}: each {direction} rule must be a mapping")
    peer = "from" if direction == "ingress" else "to"
    known = {f"{peer}Endpoints", f"{peer}CIDR", f"{peer}CIDRSet", f"{peer}Entities", "toPorts"}
    unknown = set(node) - known
    if unknown:
        raise _fail(name, node, f"{label}: {direction} rule has unknown key {sorted(unknown)[0]!r} "
                                f"(known: {', '.join(sorted(known))})")
    rule = Rule()
    if f"{peer}Endpoints" in node:
        endpoints = []
        for sel in node[f"{peer}Endpoints"] or []:
            if not isinstance(sel, dict):
                raise _fail(name, node, f"{label}: {peer}Endpoints entries must be LabelSelectors")
            _check_selector(name, sel, label)
            sel = {k: (dict(v) if isinstance(v, dict) else v) for k, v in sel.items()}
            labels = sel.get("matchLabels") or {}
            ns: str | None = namespace
            for key in NAMESPACE_LABELS:
                if key in labels:
                    ns = str(labels.pop(key))
            for expr in sel.get("matchExpressions") or []:
                if expr.get("key") in NAMESPACE_LABELS:
                    raise _fail(name, expr, f"{label}: namespace by matchExpressions is not supported; "
                                            "use matchLabels")
            endpoints.append((ns, sel))
        rule.endpoints = tuple(endpoints)
    cidrs: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                      tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]] = []
    for text in node.get(f"{peer}CIDR") or []:
        cidrs.append((_network(name, node, label, text), ()))
    for entry in node.get(f"{peer}CIDRSet") or []:
        if not isinstance(entry, dict) or "cidr" not in entry:
            raise _fail(name, node, f"{label}: {peer}CIDRSet entries need a cidr")
        cidrs.append((_network(name, entry, label, entry["cidr"]),
                      tuple(_network(name, entry, label, e) for e in entry.get("except") or [])))
    if f"{peer}CIDR" in node or f"{peer}CIDRSet" in node:
        rule.cidrs = tuple(cidrs)
    if f"{peer}Entities" in node:
        entities = {str(e) for e in node[f"{peer}Entities"] or []}
        bad = entities - set(ENTITIES)
        if bad:
            raise _fail(name, node, f"{label}: unknown entity {sorted(bad)[0]!r} (known: {', '.join(ENTITIES)})")
        rule.entities = frozenset(entities)
    rule.to_ports = tuple(_port_rule(p, name, label) for p in node.get("toPorts") or [])
    return rule


def _network(name: str, node: Any, label: str, text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError as exc:
        raise _fail(name, node, f"{label}: bad CIDR {text!r}") from exc


def _port_rule(node: Any, name: str, label: str) -> PortRule:
    if not isinstance(node, dict):
        raise _fail(name, node, f"{label}: toPorts entries must be mappings")
    unknown = set(node) - {"ports", "protocols", "rules"}
    if unknown:
        raise _fail(name, node, f"{label}: toPorts entry has unknown key {sorted(unknown)[0]!r}")
    ports = []
    for entry in node.get("ports") or []:
        if not isinstance(entry, dict) or "port" not in entry:
            raise _fail(name, node, f"{label}: each port needs `port`")
        try:
            lo = int(str(entry["port"]))
            hi = int(str(entry.get("endPort", lo)))
        except ValueError as exc:
            raise _fail(name, entry, f"{label}: port must be a number (named ports are not resolved here), "
                                     f"got {entry['port']!r}") from exc
        l4 = str(entry.get("protocol", "TCP")).upper()
        if not (0 < lo <= hi <= 65535) or l4 not in ("TCP", "UDP", "ANY"):
            raise _fail(name, entry, f"{label}: bad port {lo}-{hi}/{l4} (1-65535, protocol TCP, UDP or ANY)")
        ports.append((lo, hi, l4))
    protocols: set[str] | None = None
    if "protocols" in node:
        protocols = set()
        for proto in node["protocols"] or []:
            proto = ALIASES.get(str(proto).lower(), str(proto).lower())
            protocols.update(HTTP_FAMILY.get(proto, (proto,)))
    http_rules = []
    rules = node.get("rules") or {}
    if not isinstance(rules, dict) or set(rules) - {"http"}:
        raise _fail(name, node, f"{label}: rules supports only `http` (a list of method/path/host/headers)")
    for entry in rules.get("http") or []:
        http_rules.append(_http_rule(entry, name, label))
    if http_rules and protocols is None:
        protocols = set(HTTP_FAMILY["http"])
    return PortRule(tuple(ports), frozenset(protocols) if protocols is not None else None, tuple(http_rules))


def _http_rule(node: Any, name: str, label: str) -> HttpRule:
    if not isinstance(node, dict) or set(node) - {"method", "path", "host", "headers"}:
        raise _fail(name, node, f"{label}: an http rule has method, path, host and headers only")
    out = HttpRule()
    for key in ("method", "path", "host"):
        if key in node:
            try:
                setattr(out, key, re.compile(str(node[key])))
            except re.error as exc:
                raise _fail(name, node, f"{label}: http {key} is not a valid regular expression: {exc}") from exc
    headers = []
    for header in node.get("headers") or []:
        key, sep, value = str(header).partition(":")
        if not sep:
            raise _fail(name, node, f"{label}: http header {header!r} must be 'Name: value'")
        headers.append((key.strip(), value.strip()))
    out.headers = tuple(headers)
    return out
