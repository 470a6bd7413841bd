"""Shape of the fields the checks read: a field of the wrong type is a warning naming file:line.

The checks read every field type-safely (`kubeguard.cluster.manifest_fields`), so `containers: 5` or
`ports: [null]` cannot crash them; but silently read as "no containers" it would hide a workload.
`shape_warnings` says so, one line per wrong field: the API server would have refused the object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubeguard.cluster.bounds import int_in_range
from kubeguard.cluster.snapshot import POD_TEMPLATE_PATHS

Path_ = tuple[str | int, ...]

_POD_LISTS = ("containers", "initContainers", "ephemeralContainers", "volumes")
_CONTAINER_LISTS = ("ports", "env", "envFrom", "volumeMounts")
_CONTAINER_MAPS = ("securityContext", "resources")
_PORTS = {"containerPort": 1, "hostPort": 0, "port": 1, "nodePort": 0}  # field -> lowest allowed value


def shape_warnings(raw: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    """(path of the field, what is wrong) for each field of the wrong type that a check reads."""
    kind = raw.get("kind")
    yield from _mapping(raw, ("metadata",))
    meta = raw.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations"):
            yield from _mapping(meta, ("metadata", key), key)
    template = POD_TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    if template is not None:
        yield from _pod(raw, template)
    elif kind == "Service":
        spec = raw.get("spec")
        yield from _mapping(raw, ("spec",))
        if isinstance(spec, dict):
            yield from _list_of_mappings(spec, ("spec", "ports"), "ports", ports=True)
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        yield from _list_of_mappings(raw, ("subjects",), "subjects")
        yield from _mapping(raw, ("roleRef",))
    elif kind in ("Role", "ClusterRole"):
        yield from _list_of_mappings(raw, ("rules",), "rules")


def _pod(raw: dict[str, Any], template: Path_) -> Iterator[tuple[Path_, str]]:
    node: Any = raw
    for step in template:
        node = node.get(step) if isinstance(node, dict) else None
        if node is None:
            return
    if not isinstance(node, dict):
        yield template, f"is not a mapping ({_type(node)}): ignored"
        return
    spec_path = (*template, "spec")
    yield from _mapping(node, spec_path, "spec")
    spec = node.get("spec")
    if not isinstance(spec, dict):
        return
    for key in _POD_LISTS:
        yield from _list_of_mappings(spec, (*spec_path, key), key)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        containers = spec.get(key)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                continue
            where = (*spec_path, key, index)
            for field in _CONTAINER_LISTS:
                yield from _list_of_mappings(container, (*where, field), field, ports=field == "ports")
            for field in _CONTAINER_MAPS:
                yield from _mapping(container, (*where, field), field)


def _mapping(parent: dict[str, Any], path: Path_, key: str | None = None) -> Iterator[tuple[Path_, str]]:
    value = parent.get(key if key is not None else str(path[-1]))
    if value is not None and not isinstance(value, dict):
        yield path, f"is not a mapping ({_type(value)}): ignored"


def _list_of_mappings(parent: dict[str, Any], path: Path_, key: str, ports: bool = False
                      ) -> Iterator[tuple[Path_, str]]:
    value = parent.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        yield path, f"is not a list ({_type(value)}): ignored"
        return
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            yield (*path, index), f"is not a mapping ({_type(item)}): ignored"
        elif ports:
            for field, low in _PORTS.items():
                number = item.get(field)
                if number is not None and int_in_range(number, low, 65535) is None:
                    shown = repr(number) if len(repr(number)) <= 24 else f"{_type(number)}"
                    yield (*path, index, field), f"{shown} is not a port number ({low}-65535)"


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def dotted(path: Path_) -> str:
    """`spec.containers[0].ports` for ("spec", "containers", 0, "ports")."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text
