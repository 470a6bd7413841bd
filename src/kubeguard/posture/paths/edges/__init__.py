"""Edge rules of the attack graph, one module per family; importing this package registers them all."""

from kubeguard.posture.paths.edges import admin, cloud, endpoints, escapes, hijack, pods, rbac, secrets

__all__ = ["admin", "cloud", "endpoints", "escapes", "hijack", "pods", "rbac", "secrets"]
