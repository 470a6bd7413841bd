"""Which workload a pod belongs to: its controller from ownerReferences, as Kubernetes users name it.

A ReplicaSet created by a Deployment carries the pod-template-hash label; its name is the
Deployment's name plus ``-<hash>``, so the Deployment is named without a lookup. Jobs created by a
CronJob keep their own name (each run is its own workload). A pod without a controller is its own
workload (kind ``Pod``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeguard.cluster.manifest_fields import as_dict, dicts

CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod", "CronJob",
                    "ReplicationController")


@dataclass(frozen=True, slots=True, order=True)
class WorkloadRef:
    """A workload: namespace, controller kind and name. Written ``namespace/Kind/name``."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> WorkloadRef:
        """``shop/Deployment/web`` -> WorkloadRef; ValueError when it has not three parts."""
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r}: expected NAMESPACE/KIND/NAME (e.g. shop/Deployment/web)")
        return cls(*parts)


def owner_of(pod: dict[str, Any]) -> WorkloadRef:
    """The workload of a Pod object (as the API server returns it; fields of the wrong type count as absent)."""
    meta = as_dict(pod.get("metadata"))
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name", ""))
    labels = as_dict(meta.get("labels"))
    owners = dicts(meta.get("ownerReferences"))
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None:
        return WorkloadRef(namespace, "Pod", name)
    kind, owner_name = str(owner.get("kind", "")), str(owner.get("name", ""))
    if kind == "ReplicaSet":
        template_hash = str(labels.get("pod-template-hash", ""))
        if template_hash and owner_name.endswith(f"-{template_hash}"):
            return WorkloadRef(namespace, "Deployment", owner_name[: -len(template_hash) - 1])
    return WorkloadRef(namespace, kind or "Pod", owner_name or name)
