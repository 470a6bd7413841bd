"""Kubelet command-line flags from a node's systemd unit drop-ins and environment files.

On kubeadm nodes the kubelet's flags are not in any Kubernetes document: systemd starts it as
`kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`
(the `10-kubeadm.conf` drop-in), with the variables set by `Environment=` lines and by
`/var/lib/kubelet/kubeadm-flags.env` and `/etc/default/kubelet` (`/etc/sysconfig/kubelet`).
This module reads those files when a scan path holds them (recognised by name), groups them by
node (the folder above `etc/`, `usr/lib/` or `var/lib/`), builds the command line, and lays its
flags over the `KubeletConfiguration` file that `--config` names when that file is in the scan
too. Flags win over the file and a later flag over an earlier one, as in the kubelet.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kubeguard.cluster.components import (
    BINARY_DEFAULTS,
    KUBEADM_KUBELET_DEFAULTS,
    KUBELET_CONFIG_DEFAULTS,
    parse_command_flags,
)
from kubeguard.cluster.manifests import read_text
from kubeguard.cluster.snapshot import ComponentConfig, LoadProblem, SourceRef

# kubeadm's drop-in when none is in the scan: the order systemd expands the variables in.
KUBEADM_EXEC_START = "$KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS"
KUBEADM_CONFIG_ARGS = "--config=/var/lib/kubelet/config.yaml"
_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def is_flags_file(path: Path) -> bool:
    """True for the files that carry kubelet flags on a node (by name and folder)."""
    parts = path.parts
    if path.name == "kubeadm-flags.env":
        return True
    if len(parts) >= 2 and parts[-2] == "kubelet.service.d" and path.suffix == ".conf":
        return True
    return path.name == "kubelet" and len(parts) >= 3 and parts[-2] in ("default", "sysconfig") \
        and parts[-3] == "etc"


_LAYOUTS = (  # where each file lives below a node's `/`: the folders between `/` and the file
    ("var", "lib", "kubelet"), ("etc", "systemd", "system", "kubelet.service.d"),
    ("usr", "lib", "systemd", "system", "kubelet.service.d"), ("lib", "systemd", "system", "kubelet.service.d"),
    ("etc", "default"), ("etc", "sysconfig"),
)


def node_root(path: Path) -> Path:
    """The folder that stands for the node's `/` (the file's folder when it is not laid out as on a node)."""
    folders = path.parent.parts
    for layout in _LAYOUTS:
        if folders[-len(layout):] == layout and len(folders) > len(layout):
            return Path(*folders[:-len(layout)])
    return path.parent.parent if path.parent.name == "kubelet.service.d" else path.parent


@dataclass(slots=True)
class _Value:
    """A variable's value and where it was set."""

    text: str
    source: SourceRef


@dataclass(slots=True)
class _NodeFlags:
    """What one node's unit and environment files say."""

    root: Path
    files: list[Path] = field(default_factory=list)
    env: dict[str, _Value] = field(default_factory=dict)
    exec_start: _Value | None = None
    kubeadm: bool = False


def apply(files: Iterable[Path], components: list[ComponentConfig], problems: list[LoadProblem]) -> None:
    """Add each node's kubelet flags to `components` (over its config file's kubelet, if scanned)."""
    nodes: dict[Path, _NodeFlags] = {}
    for file in files:
        root = node_root(file)
        node = nodes.setdefault(root, _NodeFlags(root))
        node.files.append(file)
    for node in nodes.values():
        _read_node(node, problems)
        config = _kubelet_config(node, components, problems)
        if config is not None and not any(known is config for known in components):
            components.append(config)


def _read_node(node: _NodeFlags, problems: list[LoadProblem]) -> None:
    # Environment files first, then drop-ins in name order (systemd's order); a later assignment wins.
    env_files = [f for f in node.files if f.suffix != ".conf"]
    drop_ins = sorted((f for f in node.files if f.suffix == ".conf"), key=lambda f: f.name)
    for file in env_files:
        node.kubeadm |= file.name == "kubeadm-flags.env"
        _read_env_file(file, node.env, problems)
    for file in drop_ins:
        _read_drop_in(file, node, problems)


def _read_env_file(file: Path, env: dict[str, _Value], problems: list[LoadProblem]) -> None:
    text = read_text(file, problems)
    if text is None:
        return
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        _assign(stripped, SourceRef(str(file), number), env, problems)


def _assign(text: str, where: SourceRef, env: dict[str, _Value], problems: list[LoadProblem]) -> None:
    """`NAME=value` with shell quoting, as systemd's EnvironmentFile= reads it."""
    if not _ASSIGN.match(text):
        problems.append(LoadProblem(str(where), "not a NAME=value assignment: not checked"))
        return
    name, _, raw = text.partition("=")
    try:
        words = shlex.split(raw, comments=False, posix=True)
    except ValueError as exc:
        problems.append(LoadProblem(str(where), f"{name}: {exc}: not checked"))
        return
    env[name] = _Value(" ".join(words), where)


def _read_drop_in(file: Path, node: _NodeFlags, problems: list[LoadProblem]) -> None:
    text = read_text(file, problems)
    if text is None:
        return
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        key, sep, value = stripped.partition("=")
        if not sep or stripped.startswith(("#", ";", "[")):
            continue
        where = SourceRef(str(file), number)
        key = key.strip()
        value = value.strip()
        if key == "Environment":
            _read_environment_line(value, where, node.env, problems)
        elif key == "EnvironmentFile":
            node.kubeadm |= value.lstrip("-").endswith("kubeadm-flags.env")
        elif key == "ExecStart":
            node.kubeadm |= file.name == "10-kubeadm.conf"
            node.exec_start = _Value(value, where) if value else None  # an empty ExecStart= resets


def _read_environment_line(value: str, where: SourceRef, env: dict[str, _Value],
                           problems: list[LoadProblem]) -> None:
    """`Environment="A=1" "B=2"` (several quoted assignments on one line)."""
    try:
        words = shlex.split(value, posix=True)
    except ValueError as exc:
        problems.append(LoadProblem(str(where), f"Environment=: {exc}: not checked"))
        return
    for word in words:
        if _ASSIGN.match(word):
            name, _, text = word.partition("=")
            env[name] = _Value(text, where)
        else:
            problems.append(LoadProblem(str(where), f"Environment=: {word!r} is not NAME=value: not checked"))


def _command_line(node: _NodeFlags) -> list[tuple[str, SourceRef]]:
    """The kubelet's arguments, each with the file:line it came from ($VAR expanded and split)."""
    exec_start = node.exec_start
    template = exec_start.text if exec_start else KUBEADM_EXEC_START
    if exec_start is None:  # no unit in the scan: the kubeadm packages' drop-in reads these files
        node.kubeadm = True
    if exec_start is None and "KUBELET_CONFIG_ARGS" not in node.env:
        node.env["KUBELET_CONFIG_ARGS"] = _Value(KUBEADM_CONFIG_ARGS, SourceRef("<kubeadm drop-in defaults>"))
    default_where = exec_start.source if exec_start else SourceRef("<kubeadm drop-in defaults>")
    out: list[tuple[str, SourceRef]] = []
    for word in template.split()[1 if exec_start else 0:]:  # ExecStart's first word is the binary
        match = _VARIABLE.fullmatch(word)
        if match:
            value = node.env.get(match.group(1) or match.group(2))
            if value is not None:
                out.extend((token, value.source) for token in value.text.split())
        else:
            out.append((word, default_where))
    return out


def _kubelet_config(node: _NodeFlags, components: list[ComponentConfig],
                    problems: list[LoadProblem]) -> ComponentConfig | None:
    args = _command_line(node)
    if not args:
        return None
    tokens = [token for token, _ in args]
    flags = parse_command_flags(tokens)
    config_path = next((value for name, value, _ in flags if name == "config"), "")
    config = _scanned_config(node, config_path, components) if config_path else None
    if config is None:
        base = dict(BINARY_DEFAULTS["kubelet"])
        first = args[0][1]
        if config_path:
            base.update(KUBELET_CONFIG_DEFAULTS)
            if node.kubeadm:
                base.update(KUBEADM_KUBELET_DEFAULTS)
            problems.append(LoadProblem(str(first), f"kubelet --config {config_path} is not in the scan: "
                                                    f"{'kubeadm' if node.kubeadm else 'KubeletConfiguration'}"
                                                    " defaults assumed for it"))
        config = ComponentConfig("kubelet", base, first)
    if not config.node:
        config.node = node.root.name  # the folder standing for the node's `/` names it
    for name, value, index in flags:
        if name == "config":
            continue
        config.flags[name] = value
        config.sources[name] = args[index][1]
    return config


def _scanned_config(node: _NodeFlags, config_path: str, components: list[ComponentConfig]) -> ComponentConfig | None:
    """The kubelet built from the KubeletConfiguration file `--config` names, if it was scanned.

    Looked up below the node's root as on the node, else beside one of the node's flag files.
    """
    relative = PurePosixPath(config_path.lstrip("/"))
    wanted = {node.root.joinpath(*relative.parts)} | {file.parent / relative.name for file in node.files}
    for config in components:
        if config.component == "kubelet" and config.source is not None and Path(config.source.file) in wanted:
            return config
    return None
