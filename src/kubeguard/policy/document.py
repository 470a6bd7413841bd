"""The WorkloadPolicy document: what one workload may run, open and connect to, and in which mode.

YAML form (``apiVersion: kubeguard.io/v1alpha1``, ``kind: WorkloadPolicy``; deploy/crds holds the
CustomResourceDefinition with the same schema)::

    metadata: {name: shop-deployment-web, namespace: shop}
    spec:
      workload: {kind: Deployment, name: web}
      selector: {matchLabels: {app: web}}   # learned from the pods (used for NetworkPolicy export)
      mode: monitor                     # discover | monitor | protect
      zeroDrift: false                  # block executables written after the container started
      processes:
        - {path: /usr/bin/python3, parents: [/usr/bin/nsenter], users: [root], fromImage: true}
        - {path: /usr/bin/nc, action: deny}
      scripts:                          # optional: scripts run by sh/bash/dash/python3/perl (path from argv)
        - {path: /app/entrypoint.sh, interpreters: [/bin/sh]}
      files:
        - {path: /etc/hosts, access: read}
        - {path: "/etc/app/*", access: write}
      network:
        egress:  [{peer: {workload: shop/Deployment/db}, port: 5432, protocol: TCP}]
        ingress: [{peer: {cidr: 10.0.0.0/8}, port: 8080, protocol: TCP}]
        listen:  [{port: 8080, protocol: TCP}]

Paths may be shell patterns (``fnmatch``). A rule's ``action`` is ``allow`` (the default) or
``deny``; a deny rule wins over any allow rule, and rules written by people win over learned ones
(`merge`). `parse_documents` validates a whole file and raises `PolicyError` naming file:line of
the first problem; nothing of a bad file is used.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kubeguard.cluster.owners import CONTROLLER_KINDS, WorkloadRef
from kubeguard.policy.scripts import ScriptRule as ScriptRule  # defined there: the exec guard's answerer needs it
from kubeguard.policy.scripts import is_pattern as _is_pattern

API_VERSION = "kubeguard.io/v1alpha1"
KIND = "WorkloadPolicy"
MODES = ("discover", "monitor", "protect")
ACTIONS = ("allow", "deny")
ACCESS = ("read", "write")
PROTOCOLS = ("TCP", "UDP")


class PolicyError(Exception):
    """A policy document is malformed; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class ProcessRule:
    """An executable path (or pattern); parents/users/fromImage are what learning saw (informative)."""

    path: str
    action: str = "allow"
    parents: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    from_image: bool | None = None

    @property
    def key(self) -> str:
        return self.path

    def matches(self, path: str) -> bool:
        return path == self.path or (_is_pattern(self.path) and fnmatch.fnmatchcase(path, self.path))


@dataclass(frozen=True, slots=True)
class FileRule:
    """A file path (or pattern) below a sensitive root and the access allowed (write implies read)."""

    path: str
    access: str = "read"
    action: str = "allow"

    @property
    def key(self) -> str:
        return f"{self.access} {self.path}"

    def matches(self, path: str, write: bool) -> bool:
        if write and self.access != "write" and self.action == "allow":
            return False
        return path == self.path or (_is_pattern(self.path) and fnmatch.fnmatchcase(path, self.path))


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end: a workload (``ns/Kind/name``), a CIDR, or a DNS name (resolved by the agent)."""

    workload: str = ""
    cidr: str = ""
    dns: str = ""

    def __str__(self) -> str:
        return (f"workload {self.workload}" if self.workload else f"cidr {self.cidr}" if self.cidr
                else f"dns {self.dns}" if self.dns else "any")

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("workload", self.workload), ("cidr", self.cidr), ("dns", self.dns)) if v}


@dataclass(frozen=True, slots=True)
class NetRule:
    """A peer, port (0 = any) and L4 protocol; used for egress, ingress and listen (no peer) lists."""

    peer: Peer = field(default_factory=Peer)
    port: int = 0
    protocol: str = "TCP"
    action: str = "allow"

    @property
    def key(self) -> str:
        return f"{self.protocol}/{self.port or 'any'} {self.peer}"

    def matches(self, peer_ip: str, peer_workload: str, port: int, protocol: str,
                resolved: dict[str, tuple[str, ...]] | None = None) -> bool:
        if self.port and self.port != port:
            return False
        if self.protocol != protocol.upper():
            return False
        peer = self.peer
        if peer.workload:
            return peer.workload == peer_workload
        if peer.cidr:
            try:
                return ipaddress.ip_address(peer_ip) in ipaddress.ip_network(peer.cidr, strict=False)
            except ValueError:
                return False
        if peer.dns:
            return peer_ip in (resolved or {}).get(peer.dns, ())
        return True


@dataclass(slots=True)
class WorkloadPolicy:
    """One workload's policy. `mode` None means "not set here" (a hand-written file that only adds rules)."""

    workload: WorkloadRef
    mode: str | None = None
    zero_drift: bool | None = None
    processes: list[ProcessRule] = field(default_factory=list)
    scripts: list[ScriptRule] = field(default_factory=list)
    files: list[FileRule] = field(default_factory=list)
    egress: list[NetRule] = field(default_factory=list)
    ingress: list[NetRule] = field(default_factory=list)
    listen: list[NetRule] = field(default_factory=list)
    selector: dict[str, str] = field(default_factory=dict)  # pod labels shared by the replicas (NetworkPolicy)
    source: str = ""  # file:line it came from (for messages)

    # -- queries -------------------------------------------------------------------------------
    def process_allowed(self, path: str) -> bool:
        """True when an allow rule matches `path` and no deny rule does."""
        return _decide(self.processes, lambda r: r.matches(path))

    def script_allowed(self, path: str) -> bool:
        """True when an allow rule matches the script `path` and no deny rule does."""
        return _decide(self.scripts, lambda r: r.matches(path))

    def file_allowed(self, path: str, write: bool) -> bool:
        return _decide(self.files, lambda r: r.matches(path, write))

    def egress_allowed(self, peer_ip: str, peer_workload: str, port: int, protocol: str,
                       resolved: dict[str, tuple[str, ...]] | None = None) -> bool:
        return _decide(self.egress, lambda r: r.matches(peer_ip, peer_workload, port, protocol, resolved))

    def ingress_allowed(self, peer_ip: str, peer_workload: str, port: int, protocol: str) -> bool:
        return _decide(self.ingress, lambda r: r.matches(peer_ip, peer_workload, port, protocol))

    def rule_keys(self) -> set[str]:
        """Every rule as one line (``process allow /usr/bin/python3``); `diff` compares these."""
        keys = {f"process {r.action} {r.path}" for r in self.processes}
        keys |= {f"script {r.action} {r.path}" for r in self.scripts}
        keys |= {f"file {r.action} {r.access} {r.path}" for r in self.files}
        for name, rules in (("egress", self.egress), ("ingress", self.ingress), ("listen", self.listen)):
            keys |= {f"{name} {r.action} {r.key}" for r in rules}
        if self.mode:
            keys.add(f"mode {self.mode}")
        if self.zero_drift:
            keys.add("zeroDrift true")
        return keys

    # -- YAML ----------------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"workload": {"kind": self.workload.kind, "name": self.workload.name}}
        if self.selector:
            spec["selector"] = {"matchLabels": dict(sorted(self.selector.items()))}
        if self.mode:
            spec["mode"] = self.mode
        if self.zero_drift is not None:
            spec["zeroDrift"] = self.zero_drift
        spec["processes"] = [_process_doc(r) for r in sorted(self.processes, key=lambda r: r.path)]
        if self.scripts:  # absent when none: exports without scripts stay as they were
            spec["scripts"] = [_script_doc(r) for r in sorted(self.scripts, key=lambda r: r.path)]
        spec["files"] = [_drop_default({"path": r.path, "access": r.access, "action": r.action})
                         for r in sorted(self.files, key=lambda r: (r.path, r.access))]
        spec["network"] = {name: [_net_doc(r) for r in sorted(rules, key=lambda r: r.key)]
                           for name, rules in (("egress", self.egress), ("ingress", self.ingress),
                                               ("listen", self.listen))}
        return {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": document_name(self.workload), "namespace": self.workload.namespace},
                "spec": spec}

    def copy(self) -> WorkloadPolicy:
        return replace(self, selector=dict(self.selector), processes=list(self.processes),
                       scripts=list(self.scripts), files=list(self.files),
                       egress=list(self.egress), ingress=list(self.ingress), listen=list(self.listen))


def _decide(rules: list[Any], match: Any) -> bool:
    allowed = False
    for rule in rules:
        if match(rule):
            if rule.action == "deny":
                return False
            allowed = True
    return allowed


def _drop_default(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("action") == "allow":
        del doc["action"]
    return doc


def _process_doc(rule: ProcessRule) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": rule.path, "action": rule.action}
    if rule.parents:
        doc["parents"] = list(rule.parents)
    if rule.users:
        doc["users"] = list(rule.users)
    if rule.from_image is not None:
        doc["fromImage"] = rule.from_image
    return _drop_default(doc)


def _script_doc(rule: ScriptRule) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": rule.path, "action": rule.action}
    if rule.interpreters:
        doc["interpreters"] = list(rule.interpreters)
    return _drop_default(doc)


def _net_doc(rule: NetRule) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rule.peer.to_dict():
        doc["peer"] = rule.peer.to_dict()
    doc.update({"port": rule.port, "protocol": rule.protocol, "action": rule.action})
    return _drop_default(doc)


def document_name(ref: WorkloadRef) -> str:
    """A DNS-1123 name for the policy object of `ref` (``deployment-web``)."""
    return f"{ref.kind.lower()}-{ref.name}"[:253]


def merge(learned: WorkloadPolicy | None, user: WorkloadPolicy | None) -> WorkloadPolicy | None:
    """The policy in force: learned rules plus hand-written ones; the user's mode and denies win."""
    if learned is None and user is None:
        return None
    if user is None:
        assert learned is not None
        return learned
    if learned is None:
        out = user.copy()
        out.mode = user.mode or "discover"
        return out
    out = learned.copy()
    out.mode = user.mode or learned.mode
    if user.zero_drift is not None:
        out.zero_drift = user.zero_drift
    out.selector = user.selector or learned.selector
    out.processes = _merged(learned.processes, user.processes)
    out.scripts = _merged(learned.scripts, user.scripts)
    out.files = _merged(learned.files, user.files)
    out.egress = _merged(learned.egress, user.egress)
    out.ingress = _merged(learned.ingress, user.ingress)
    out.listen = _merged(learned.listen, user.listen)
    return out


def _merged(learned: list[Any], user: list[Any]) -> list[Any]:
    """User rules replace learned rules with the same key; the rest are kept."""
    keys = {r.key for r in user}
    return [r for r in learned if r.key not in keys] + list(user)


# -- parsing with line numbers ------------------------------------------------------------------
class _Doc:
    """Walks a YAML node tree, raising PolicyError at the node's line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what}: expected a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in allowed:
                raise self.fail(key_node, f"{what}: unknown field {key!r} (expected one of: {', '.join(allowed)})")
            if key in out:
                raise self.fail(key_node, f"{what}: field {key!r} given twice")
            out[key] = value
        return out

    def sequence(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what}: expected a list")
        return list(node.value)

    def string(self, node: yaml.Node, what: str, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith((":null", ":bool")) or not node.value:
            raise self.fail(node, f"{what}: expected a non-empty string")
        if choices and node.value not in choices:
            raise self.fail(node, f"{what}: {node.value!r} is not one of {', '.join(choices)}")
        return str(node.value)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or not node.tag.endswith(":bool"):
            raise self.fail(node, f"{what}: expected true or false")
        return str(node.value).lower() in ("true", "yes", "on")

    def integer(self, node: yaml.Node, what: str, low: int, high: int) -> int:
        if not isinstance(node, yaml.ScalarNode) or not node.tag.endswith(":int"):
            raise self.fail(node, f"{what}: expected an integer")
        value = int(node.value)
        if not low <= value <= high:
            raise self.fail(node, f"{what}: {value} is outside {low}..{high}")
        return value

    def strings(self, node: yaml.Node | None, what: str) -> tuple[str, ...]:
        return tuple(self.string(n, what) for n in self.sequence(node, what))


def parse_documents(text: str, source: str) -> list[WorkloadPolicy]:
    """Every WorkloadPolicy in a YAML stream; PolicyError (file:line) on the first problem."""
    doc = _Doc(source)
    try:
        nodes = list(yaml.compose_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(f"{source}:{line}: not valid YAML: {problem}") from exc
    policies: list[WorkloadPolicy] = []
    seen: dict[WorkloadRef, str] = {}
    for node in nodes:
        if node is None:
            continue
        policy = _parse_policy(doc, node)
        if policy.workload in seen:
            raise doc.fail(node, f"second policy for {policy.workload} (first at {seen[policy.workload]})")
        seen[policy.workload] = policy.source
        policies.append(policy)
    return policies


def _parse_policy(doc: _Doc, node: yaml.Node) -> WorkloadPolicy:
    top = doc.mapping(node, "document", ("apiVersion", "kind", "metadata", "spec"))
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in top:
            raise doc.fail(node, f"missing {key} (expected {expected})")
        value = doc.string(top[key], key)
        if value != expected:
            raise doc.fail(top[key], f"{key}: {value!r}, expected {expected!r}")
    if "metadata" not in top or "spec" not in top:
        raise doc.fail(node, "a WorkloadPolicy needs metadata and spec")
    meta = doc.mapping(top["metadata"], "metadata", ("name", "namespace", "labels", "annotations"))
    if "namespace" not in meta:
        raise doc.fail(top["metadata"], "metadata.namespace is required (the workload's namespace)")
    namespace = doc.string(meta["namespace"], "metadata.namespace")
    spec = doc.mapping(top["spec"], "spec", ("workload", "selector", "mode", "zeroDrift", "processes", "scripts",
                                             "files", "network"))
    if "workload" not in spec:
        raise doc.fail(top["spec"], "spec.workload is required ({kind, name})")
    wl = doc.mapping(spec["workload"], "spec.workload", ("kind", "name"))
    if "kind" not in wl or "name" not in wl:
        raise doc.fail(spec["workload"], "spec.workload needs kind and name")
    ref = WorkloadRef(namespace, doc.string(wl["kind"], "spec.workload.kind", CONTROLLER_KINDS),
                      doc.string(wl["name"], "spec.workload.name"))
    policy = WorkloadPolicy(ref, source=f"{doc.source}:{node.start_mark.line + 1}")
    if "selector" in spec:
        sel = doc.mapping(spec["selector"], "spec.selector", ("matchLabels",))
        if "matchLabels" in sel:
            labels = doc.mapping(sel["matchLabels"], "spec.selector.matchLabels",
                                 tuple(k.value for k, _ in getattr(sel["matchLabels"], "value", [])
                                       if isinstance(k, yaml.ScalarNode)))
            policy.selector = {k: doc.string(v, f"label {k}") for k, v in labels.items()}
    if "mode" in spec:
        policy.mode = doc.string(spec["mode"], "spec.mode", MODES)
    if "zeroDrift" in spec:
        policy.zero_drift = doc.boolean(spec["zeroDrift"], "spec.zeroDrift")
    for item in doc.sequence(spec.get("processes"), "spec.processes"):
        fields = doc.mapping(item, "process rule", ("path", "action", "parents", "users", "fromImage"))
        if "path" not in fields:
            raise doc.fail(item, "process rule: path is required")
        path = doc.string(fields["path"], "process rule path")
        if not path.startswith("/"):
            raise doc.fail(fields["path"], f"process rule path: {path!r} is not absolute")
        policy.processes.append(ProcessRule(
            path=path, action=doc.string(fields["action"], "action", ACTIONS) if "action" in fields else "allow",
            parents=doc.strings(fields.get("parents"), "parents"), users=doc.strings(fields.get("users"), "users"),
            from_image=doc.boolean(fields["fromImage"], "fromImage") if "fromImage" in fields else None))
    for item in doc.sequence(spec.get("scripts"), "spec.scripts"):
        fields = doc.mapping(item, "script rule", ("path", "action", "interpreters"))
        if "path" not in fields:
            raise doc.fail(item, "script rule: path is required")
        path = doc.string(fields["path"], "script rule path")
        if not path.startswith("/"):
            raise doc.fail(fields["path"], f"script rule path: {path!r} is not absolute")
        interpreter_nodes = doc.sequence(fields.get("interpreters"), "interpreters")
        interpreters = tuple(doc.string(n, "interpreters") for n in interpreter_nodes)
        for interpreter, node in zip(interpreters, interpreter_nodes, strict=True):
            if not interpreter.startswith("/"):
                raise doc.fail(node, f"script rule interpreter: {interpreter!r} is not absolute")
        policy.scripts.append(ScriptRule(
            path=path, action=doc.string(fields["action"], "action", ACTIONS) if "action" in fields else "allow",
            interpreters=interpreters))
    for item in doc.sequence(spec.get("files"), "spec.files"):
        fields = doc.mapping(item, "file rule", ("path", "access", "action"))
        if "path" not in fields:
            raise doc.fail(item, "file rule: path is required")
        path = doc.string(fields["path"], "file rule path")
        if not path.startswith("/"):
            raise doc.fail(fields["path"], f"file rule path: {path!r} is not absolute")
        policy.files.append(FileRule(
            path=path, access=doc.string(fields["access"], "access", ACCESS) if "access" in fields else "read",
            action=doc.string(fields["action"], "action", ACTIONS) if "action" in fields else "allow"))
    if "network" in spec:
        net = doc.mapping(spec["network"], "spec.network", ("egress", "ingress", "listen"))
        for name in ("egress", "ingress", "listen"):
            target = getattr(policy, name)
            for item in doc.sequence(net.get(name), f"spec.network.{name}"):
                target.append(_parse_net_rule(doc, item, name))
    return policy


def _parse_net_rule(doc: _Doc, item: yaml.Node, name: str) -> NetRule:
    fields = doc.mapping(item, f"{name} rule", ("peer", "port", "protocol", "action"))
    peer = Peer()
    if "peer" in fields:
        if name == "listen":
            raise doc.fail(fields["peer"], "listen rule: a listening port has no peer")
        pf = doc.mapping(fields["peer"], f"{name} peer", ("workload", "cidr", "dns"))
        if len(pf) != 1:
            raise doc.fail(fields["peer"], f"{name} peer: give exactly one of workload, cidr, dns")
        (key, value_node), = pf.items()
        value = doc.string(value_node, f"peer {key}")
        if key == "workload":
            try:
                WorkloadRef.parse(value)
            except ValueError as exc:
                raise doc.fail(value_node, f"peer workload: {exc}") from None
        if key == "cidr":
            try:
                value = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise doc.fail(value_node, f"peer cidr: {value!r} is not an address or network") from None
        peer = Peer(**{key: value})
    return NetRule(
        peer=peer, port=doc.integer(fields["port"], f"{name} port", 0, 65535) if "port" in fields else 0,
        protocol=doc.string(fields["protocol"], "protocol", PROTOCOLS) if "protocol" in fields else "TCP",
        action=doc.string(fields["action"], "action", ACTIONS) if "action" in fields else "allow")


def load_file(path: Path) -> list[WorkloadPolicy]:
    """Parse one policy file (PolicyError naming path:line on any problem, including unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}:1: cannot read policy file: {getattr(exc, 'strerror', None) or exc}") from exc
    return parse_documents(text, str(path))


def dump_documents(policies: list[WorkloadPolicy]) -> str:
    """YAML stream of the policies, sorted by workload (stable, diff-friendly)."""
    docs = [p.to_document() for p in sorted(policies, key=lambda p: p.workload)]
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False) if docs else ""
