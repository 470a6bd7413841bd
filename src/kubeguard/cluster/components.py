"""Control-plane configuration -> effective flags of each component (ComponentConfig).

Sources, and the precedence the components themselves apply:
- static pod manifests (kube-apiserver, etcd, kube-controller-manager, kube-scheduler): the
  container's command/args are the flags; what is absent takes the binary's own default.
- kubeadm `ClusterConfiguration` (apiServer/controllerManager/scheduler `extraArgs`,
  `etcd.local.extraArgs`): kubeadm's generated flags, overridden by extraArgs.
- kubelet: the binary's flag defaults, then a `KubeletConfiguration` file (with that file format's
  own defaults), then command-line flags (`nodeRegistration.kubeletExtraArgs` of kubeadm
  `InitConfiguration` / `JoinConfiguration`) which win over the file, as the kubelet does.
- kind `Cluster` configs: their `kubeadmConfigPatches` strings (cluster-wide and per node) are
  parsed as the kubeadm documents above, one set per node of the kind cluster.
Flag values are strings, as on a command line. Defaults are the upstream ones (Kubernetes 1.29+).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml

from kubeguard.cluster.manifests import Document, node_at, node_line, read_embedded
from kubeguard.cluster.snapshot import ComponentConfig, K8sObject, LoadProblem, SourceRef

COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kubelet")
_CONFIG_GROUPS = ("kubeadm.k8s.io", "kubelet.config.k8s.io", "kind.x-k8s.io")

# Flag defaults of the binaries when nothing sets them (only those the checks read).
BINARY_DEFAULTS: dict[str, dict[str, str]] = {
    "kube-apiserver": {"anonymous-auth": "true", "authorization-mode": "AlwaysAllow"},
    "etcd": {"client-cert-auth": "false", "auto-tls": "false", "listen-client-urls": "http://localhost:2379"},
    "kube-controller-manager": {},
    "kube-scheduler": {},
    "kubelet": {"anonymous-auth": "true", "authentication-token-webhook": "false",
                "authorization-mode": "AlwaysAllow", "read-only-port": "10255", "rotate-certificates": "false"},
}
# What kubeadm passes to the static pods it writes, before extraArgs.
KUBEADM_DEFAULTS: dict[str, dict[str, str]] = {
    "kube-apiserver": {
        "authorization-mode": "Node,RBAC", "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true", "client-ca-file": "/etc/kubernetes/pki/ca.crt",
        "tls-cert-file": "/etc/kubernetes/pki/apiserver.crt",
        "tls-private-key-file": "/etc/kubernetes/pki/apiserver.key",
        "kubelet-client-certificate": "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "kubelet-client-key": "/etc/kubernetes/pki/apiserver-kubelet-client.key",
        "etcd-cafile": "/etc/kubernetes/pki/etcd/ca.crt", "secure-port": "6443", "allow-privileged": "true",
    },
    "etcd": {
        "client-cert-auth": "true", "peer-client-cert-auth": "true",
        "cert-file": "/etc/kubernetes/pki/etcd/server.crt", "key-file": "/etc/kubernetes/pki/etcd/server.key",
        "trusted-ca-file": "/etc/kubernetes/pki/etcd/ca.crt", "listen-client-urls": "https://127.0.0.1:2379",
    },
    "kube-controller-manager": {"use-service-account-credentials": "true", "bind-address": "127.0.0.1",
                                "root-ca-file": "/etc/kubernetes/pki/ca.crt"},
    "kube-scheduler": {"bind-address": "127.0.0.1"},
}
# KubeletConfiguration (kubelet.config.k8s.io/v1beta1) defaults, as flag values.
KUBELET_CONFIG_DEFAULTS = {"anonymous-auth": "false", "authentication-token-webhook": "true",
                           "authorization-mode": "Webhook", "read-only-port": "0", "rotate-certificates": "false"}
# kubeadm's generated KubeletConfiguration sets these on top of the file defaults.
KUBEADM_KUBELET_DEFAULTS = {"rotate-certificates": "true", "client-ca-file": "/etc/kubernetes/pki/ca.crt"}
# KubeletConfiguration field path -> kubelet flag.
KUBELET_FIELDS: dict[tuple[str, ...], str] = {
    ("authentication", "anonymous", "enabled"): "anonymous-auth",
    ("authentication", "webhook", "enabled"): "authentication-token-webhook",
    ("authentication", "x509", "clientCAFile"): "client-ca-file",
    ("authorization", "mode"): "authorization-mode",
    ("readOnlyPort",): "read-only-port",
    ("port",): "port",
    ("address",): "address",
    ("rotateCertificates",): "rotate-certificates",
    ("serverTLSBootstrap",): "rotate-server-certificates",
    ("protectKernelDefaults",): "protect-kernel-defaults",
    ("tlsCertFile",): "tls-cert-file",
    ("tlsPrivateKeyFile",): "tls-private-key-file",
    ("makeIPTablesUtilChains",): "make-iptables-util-chains",
}
_CLUSTER_SECTIONS = {"kube-apiserver": ("apiServer",), "kube-controller-manager": ("controllerManager",),
                     "kube-scheduler": ("scheduler",), "etcd": ("etcd", "local")}


def is_config_kind(value: dict[str, Any]) -> bool:
    """True for kubeadm, KubeletConfiguration and kind Cluster documents."""
    group = str(value.get("apiVersion", "")).rpartition("/")[0]
    return group in _CONFIG_GROUPS


def flag_value(value: Any) -> str:
    """A YAML/JSON value as a command line would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(flag_value(v) for v in value)
    return "" if value is None else str(value)


def parse_command_flags(tokens: list[str]) -> list[tuple[str, str, int]]:
    """(`flag`, value, token index) for `--flag=value`, `--flag value` and bare `--flag` (true)."""
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and len(token) > 1:
            name = token.lstrip("-")
            if "=" in name:
                key, _, value = name.partition("=")
                out.append((key, value, i))
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                out.append((name, tokens[i + 1], i))
                i += 1
            else:
                out.append((name, "true", i))
        i += 1
    return out


def component_of(command: list[str]) -> str | None:
    """Which control-plane component a container command runs, if any."""
    if not command:
        return None
    binary = PurePath(command[0]).name
    return binary if binary in COMPONENTS else None


def _words(value: object) -> list[str]:
    """A container's command or args as text; a scalar or mapping there (a broken manifest) reads as none."""
    return [str(t) for t in value if t is not None] if isinstance(value, list) else []


def from_static_pod(obj: K8sObject, node: yaml.Node | None, problems: list[LoadProblem]) -> ComponentConfig | None:
    """The component a static pod runs (first container whose command is a component binary)."""
    containers = obj.spec.get("containers")
    if not isinstance(containers, list):
        return None
    for ci, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        command = _words(container.get("command"))
        args = _words(container.get("args"))
        name = component_of(command) or (component_of(args) if not command else None)
        if name is None:
            continue
        config = ComponentConfig(name, dict(BINARY_DEFAULTS.get(name, {})), obj.source,
                                 node=str(obj.spec.get("nodeName") or ""))
        base = obj.source or SourceRef("<unknown>")
        for part, tokens in (("command", command), ("args", args)):
            for flag, value, index in parse_command_flags(tokens):
                config.flags[flag] = value
                config.sources[flag] = node_line(node, base, "spec", "containers", ci, part, index)
        return config
    return None


@dataclass(slots=True)
class _ConfigSet:
    """The kubeadm/kubelet documents that configure one node."""

    node_name: str = ""
    control_plane: bool = True
    kubeadm: bool = False  # a node kubeadm set up (kind nodes always are), even with no kubeadm document
    origin: SourceRef | None = None  # where the node is declared (kind), for components with no document
    cluster: list[Document] = field(default_factory=list)
    init: list[Document] = field(default_factory=list)
    join: list[Document] = field(default_factory=list)
    kubelet: list[Document] = field(default_factory=list)

    def add(self, doc: Document, problems: list[LoadProblem]) -> None:
        kind = doc.value.get("kind")
        if not isinstance(kind, str):  # a list or mapping here would not even be hashable
            problems.append(LoadProblem(str(doc.source), f"configuration kind is not a string ({kind!r}): not checked"))
            return
        target = {"ClusterConfiguration": self.cluster, "InitConfiguration": self.init,
                  "JoinConfiguration": self.join, "KubeletConfiguration": self.kubelet}.get(kind)
        if target is None:
            if kind not in ("KubeProxyConfiguration", "ResetConfiguration", "UpgradeConfiguration"):
                problems.append(LoadProblem(str(doc.source), f"unknown configuration kind {kind!r}: not checked"))
            return
        target.append(doc)


def from_config_documents(docs: list[Document], problems: list[LoadProblem]) -> list[ComponentConfig]:
    """Components configured by one file's kubeadm / kubelet / kind documents."""
    out: list[ComponentConfig] = []
    plain = _ConfigSet()
    for doc in docs:
        if doc.value.get("kind") == "Cluster":
            for config_set in _kind_node_sets(doc, problems):
                out.extend(_components_of(config_set))
        else:
            plain.add(doc, problems)
    if plain.cluster or plain.init or plain.join or plain.kubelet:
        plain.control_plane = bool(plain.cluster or plain.init)
        out.extend(_components_of(plain))
    return out


def _kind_node_sets(doc: Document, problems: list[LoadProblem]) -> list[_ConfigSet]:
    """One config set per node of a kind Cluster, from cluster-wide and per-node patches."""
    value = doc.value
    cluster_name = str(value.get("name") or "kind")
    common = _patches(value, doc, ("kubeadmConfigPatches",), problems)
    nodes = value.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        nodes = [{"role": "control-plane"}]
    sets: list[_ConfigSet] = []
    counts = {"control-plane": 0, "worker": 0}
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            where = node_line(doc.node, doc.source, "nodes", index)
            problems.append(LoadProblem(str(where), "kind node is not a mapping"))
            continue
        role = "worker" if node.get("role") == "worker" else "control-plane"
        counts[role] += 1
        suffix = "" if counts[role] == 1 else str(counts[role])
        config_set = _ConfigSet(node_name=f"{cluster_name}-{role}{suffix}",
                                control_plane=role == "control-plane", kubeadm=True,
                                origin=node_line(doc.node, doc.source, "nodes", index) if node else doc.source)
        first_control_plane = role == "control-plane" and counts[role] == 1
        for patch in common + _patches(node, doc, ("nodes", index, "kubeadmConfigPatches"), problems):
            kind = patch.value.get("kind")
            # kind patches InitConfiguration on the first control plane and JoinConfiguration on the others.
            if kind == "InitConfiguration" and not first_control_plane:
                continue
            if kind == "JoinConfiguration" and first_control_plane:
                continue
            if kind == "ClusterConfiguration" and role == "worker":
                continue
            config_set.add(patch, problems)
        sets.append(config_set)
    return sets


def _patches(holder: dict[str, Any], doc: Document, path: tuple[str | int, ...],
             problems: list[LoadProblem]) -> list[Document]:
    patches = holder.get("kubeadmConfigPatches")
    if not isinstance(patches, list):
        return []
    out: list[Document] = []
    for index, text in enumerate(patches):
        where = node_line(doc.node, doc.source, *path, index)
        if not isinstance(text, str):
            problems.append(LoadProblem(str(where), "kubeadmConfigPatches entry is not a string"))
            continue
        scalar = node_at(doc.node, *path, index)
        first = where.line + (1 if isinstance(scalar, yaml.ScalarNode) and scalar.style in ("|", ">") else 0)
        for patch in read_embedded(text, SourceRef(where.file, first), problems):
            if isinstance(patch.value, dict) and patch.value.get("kind"):
                out.append(patch)
            elif patch.value is not None:
                problems.append(LoadProblem(str(patch.source), "kubeadm patch without `kind`: not checked"))
    return out


def _components_of(config_set: _ConfigSet) -> list[ComponentConfig]:
    out: list[ComponentConfig] = []
    node = config_set.node_name or _registered_name(config_set.init + config_set.join)
    kubeadm_managed = bool(config_set.kubeadm or config_set.cluster or config_set.init or config_set.join)
    fallback = Document({}, config_set.origin or SourceRef("<kubeadm defaults>"))
    if config_set.control_plane and (config_set.kubeadm or config_set.cluster or config_set.init):
        for name, section in _CLUSTER_SECTIONS.items():
            if name == "etcd" and any(isinstance(_get(d.value, "etcd", "external"), dict) for d in config_set.cluster):
                continue  # external etcd is not run (or configured) by kubeadm
            flags = {**BINARY_DEFAULTS[name], **KUBEADM_DEFAULTS[name]}
            first = (config_set.cluster or config_set.init or [fallback])[0]
            config = ComponentConfig(name, flags, first.source, node=node)
            for doc in config_set.cluster:
                _apply_extra_args(config, doc, (*section, "extraArgs"))
            out.append(config)
    kubelet_flag_docs = config_set.init if config_set.control_plane and config_set.init else config_set.join
    if kubeadm_managed or config_set.kubelet:
        flags = dict(BINARY_DEFAULTS["kubelet"])
        flags.update(KUBELET_CONFIG_DEFAULTS)  # kubeadm always gives the kubelet a config file
        if kubeadm_managed:
            flags.update(KUBEADM_KUBELET_DEFAULTS)
        first = (config_set.kubelet or kubelet_flag_docs or config_set.cluster or [fallback])[0]
        config = ComponentConfig("kubelet", flags, first.source, node=node)
        for doc in config_set.kubelet:
            for path, flag in KUBELET_FIELDS.items():
                value = _get(doc.value, *path)
                if value is not None:
                    config.flags[flag] = flag_value(value)
                    config.sources[flag] = node_line(doc.node, doc.source, *path)
        for doc in kubelet_flag_docs:  # flags win over the config file
            _apply_extra_args(config, doc, ("nodeRegistration", "kubeletExtraArgs"))
        out.append(config)
    return out


def _apply_extra_args(config: ComponentConfig, doc: Document, path: tuple[str, ...]) -> None:
    """kubeadm extraArgs: a mapping (v1beta3) or a list of {name, value} (v1beta4)."""
    args = _get(doc.value, *path)
    if isinstance(args, dict):
        for key, value in args.items():
            config.flags[str(key)] = flag_value(value)
            config.sources[str(key)] = node_line(doc.node, doc.source, *path, str(key))
    elif isinstance(args, list):
        for index, item in enumerate(args):
            if isinstance(item, dict) and "name" in item:
                config.flags[str(item["name"])] = flag_value(item.get("value"))
                config.sources[str(item["name"])] = node_line(doc.node, doc.source, *path, index)


def _registered_name(docs: Iterable[Document]) -> str:
    for doc in docs:
        name = _get(doc.value, "nodeRegistration", "name")
        if name:
            return str(name)
    return ""


def _get(value: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value

