"""Snapshot: the cluster state every analysis reads, whatever it was loaded from.

A Snapshot holds Kubernetes objects (as the API returns them, plus where they were read from),
the effective configuration of control-plane components (flags after config files), and the
problems met while loading. Loaders live beside this module; analyses only read a Snapshot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Kinds whose objects carry a pod template, and where it sits.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

CLUSTER_SCOPED_KINDS = frozenset({
    "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
    "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "APIService", "PriorityClass",
    "CertificateSigningRequest", "RuntimeClass", "IngressClass", "PodSecurityPolicy",
})


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where an object or setting was read: a file and 1-based line, or an API endpoint (line 0)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(slots=True)
class K8sObject:
    """One Kubernetes object as the API would return it, with its origin."""

    raw: dict[str, Any]
    source: SourceRef | None = None

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.raw.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        if self.kind in CLUSTER_SCOPED_KINDS:
            return ""
        return str(self.metadata.get("namespace") or "default")

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict[str, str]:
        annotations = self.metadata.get("annotations")
        return annotations if isinstance(annotations, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.raw.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


@dataclass(slots=True)
class PodTemplate:
    """A pod as some object would run it: the owner, the pod's metadata and its spec."""

    owner: K8sObject
    metadata: dict[str, Any]
    spec: dict[str, Any]

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def service_account(self) -> str:
        return str(self.spec.get("serviceAccountName") or self.spec.get("serviceAccount") or "default")

    def containers(self, include_init: bool = True) -> list[dict[str, Any]]:
        keys = ("initContainers", "containers", "ephemeralContainers") if include_init else ("containers",)
        out: list[dict[str, Any]] = []
        for key in keys:
            items = self.spec.get(key)
            if isinstance(items, list):
                out.extend(c for c in items if isinstance(c, dict))
        return out


@dataclass(slots=True)
class ComponentConfig:
    """Effective settings of one control-plane or node component, as flag name -> value.

    `component` is one of kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubelet.
    Flag names are without dashes (``anonymous-auth``); values are strings as on a command line.
    `sources` says where each flag's value came from (a static pod line, a config-file field).
    """

    component: str
    flags: dict[str, str]
    source: SourceRef | None = None
    node: str = ""
    sources: dict[str, SourceRef] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """Something that could not be read: where (file:line or endpoint) and why, in one line."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class Snapshot:
    """Cluster state for analysis."""

    objects: list[K8sObject] = field(default_factory=list)
    components: list[ComponentConfig] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    warnings: list[LoadProblem] = field(default_factory=list)  # read, but with a doubt (shape, duplicate key)
    cluster: str = ""
    _by_kind: dict[str, list[K8sObject]] | None = field(default=None, repr=False)

    def add(self, obj: K8sObject) -> None:
        self.objects.append(obj)
        self._by_kind = None

    def extend(self, objs: Iterable[K8sObject]) -> None:
        self.objects.extend(objs)
        self._by_kind = None

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        """Objects of the given kinds, in load order."""
        if self._by_kind is None:
            index: dict[str, list[K8sObject]] = defaultdict(list)
            for obj in self.objects:
                index[obj.kind].append(obj)
            self._by_kind = dict(index)
        if len(kinds) == 1:
            return self._by_kind.get(kinds[0], [])
        return [obj for kind in kinds for obj in self._by_kind.get(kind, [])]

    def get(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self.of_kind(kind):
            if obj.name == name and obj.namespace == namespace:
                return obj
        return None

    def namespaces(self) -> set[str]:
        """Every namespace named by an object or declared as a Namespace."""
        names = {obj.name for obj in self.of_kind("Namespace")}
        names.update(obj.namespace for obj in self.objects if obj.namespace)
        return names

    def pod_templates(self) -> Iterator[PodTemplate]:
        """Every pod the snapshot would run, through the template of each pod-bearing kind.

        Pods and ReplicaSets owned by a controller that is itself in the snapshot are skipped,
        so a Deployment's pods are reported once, on the Deployment.
        """
        present = {(o.kind, o.namespace, o.name) for o in self.of_kind(*POD_TEMPLATE_PATHS)}
        for kind, path in POD_TEMPLATE_PATHS.items():
            for obj in self.of_kind(kind):
                if _owned_by_present(obj, present):
                    continue
                node: Any = obj.raw
                for step in path:
                    node = node.get(step) if isinstance(node, dict) else None
                if not isinstance(node, dict):
                    continue
                meta = node.get("metadata") if path else obj.metadata
                spec = node.get("spec")
                if isinstance(spec, dict):
                    yield PodTemplate(obj, meta if isinstance(meta, dict) else {}, spec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "KubeguardSnapshot",
            "cluster": self.cluster,
            "objects": [
                {"object": o.raw, "source": [o.source.file, o.source.line] if o.source else None}
                for o in self.objects
            ],
            "components": [
                {"component": c.component, "flags": c.flags, "node": c.node,
                 "source": [c.source.file, c.source.line] if c.source else None}
                for c in self.components
            ],
            "problems": [[p.where, p.message] for p in self.problems],
            "warnings": [[p.where, p.message] for p in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        snap = cls(cluster=str(data.get("cluster", "")))
        for item in data.get("objects", []):
            src = item.get("source")
            snap.objects.append(K8sObject(item["object"], SourceRef(src[0], src[1]) if src else None))
        for item in data.get("components", []):
            src = item.get("source")
            snap.components.append(ComponentConfig(
                item["component"], dict(item.get("flags", {})),
                SourceRef(src[0], src[1]) if src else None, item.get("node", ""),
            ))
        snap.problems = [LoadProblem(w, m) for w, m in data.get("problems", [])]
        snap.warnings = [LoadProblem(w, m) for w, m in data.get("warnings", [])]
        return snap

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()))


def _owned_by_present(obj: K8sObject, present: set[tuple[str, str, str]]) -> bool:
    owners = obj.metadata.get("ownerReferences")
    if not isinstance(owners, list):
        return False
    return any(
        isinstance(ref, dict) and (ref.get("kind"), obj.namespace, ref.get("name")) in present
        for ref in owners
    )
