"""Pod-security facts shared by the posture checks and the attack graph: one copy of each predicate.

Container runtime sockets (docker, containerd, CRI-O, cri-dockerd, podman, and k3s' own
containerd), host-path coverage, and a container's privileged flag and added capabilities.
Pure functions over pod-spec dicts.
"""

from __future__ import annotations

import posixpath
from typing import Any

# Every container runtime socket a node may expose; mounting one is root on the node.
RUNTIME_SOCKETS = (
    "/var/run/docker.sock", "/run/docker.sock",
    "/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/var/run/crio/crio.sock", "/run/crio/crio.sock",
    "/var/run/cri-dockerd.sock", "/run/cri-dockerd.sock",
    "/run/podman/podman.sock", "/var/run/podman/podman.sock",
)
RUNTIME_SOCKET_NAMES = frozenset(posixpath.basename(path) for path in RUNTIME_SOCKETS)
# Directories that hold only a runtime's socket and state (not broad parents such as /run).
RUNTIME_SOCKET_DIRS = frozenset(posixpath.dirname(path) for path in RUNTIME_SOCKETS) - {"/run", "/var/run"} | {
    "/var/run/docker", "/run/docker"}


def normalise(path: str) -> str:
    """`path` as an absolute path without trailing or doubled slashes."""
    return "/" + "/".join(part for part in path.strip().split("/") if part)


def covers(mounted: str, target: str) -> bool:
    """Whether a host path mount of `mounted` gives access to `target` (target at or below it)."""
    mounted, target = normalise(mounted), normalise(target)
    return mounted == "/" or target == mounted or target.startswith(mounted + "/")


def is_runtime_socket(path: str) -> bool:
    """The host path is a runtime socket (any directory) or a runtime's own socket directory."""
    path = normalise(path)
    return posixpath.basename(path) in RUNTIME_SOCKET_NAMES or path in RUNTIME_SOCKET_DIRS


def reaches_runtime_socket(path: str) -> bool:
    """A host path mount of `path` gives access to a runtime socket (it is one, or holds one)."""
    return is_runtime_socket(path) or any(covers(path, socket) for socket in RUNTIME_SOCKETS)


def security_context(container: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext, {} when absent or malformed."""
    ctx = container.get("securityContext")
    return ctx if isinstance(ctx, dict) else {}


def is_privileged(container: dict[str, Any]) -> bool:
    return security_context(container).get("privileged") is True


def added_capabilities(container: dict[str, Any]) -> set[str]:
    """Capabilities the container adds, upper-case without the CAP_ prefix."""
    caps = security_context(container).get("capabilities")
    added = caps.get("add") if isinstance(caps, dict) else None
    if not isinstance(added, list):
        return set()
    return {str(c).upper().removeprefix("CAP_") for c in added if isinstance(c, str | int | float)}


def has_capability(container: dict[str, Any], cap: str) -> bool:
    added = added_capabilities(container)
    return cap in added or "ALL" in added
