"""Offline loading: manifest folders, files and `kubectl get -A -o json` dumps -> Snapshot.

`load_path(path)` / `load_paths(paths)` read every YAML/JSON file recursively, expand `kind: List`
(and any `*List`), keep the file and line of each object, and hand control-plane configuration
(static pods, kubeadm, kind, KubeletConfiguration) to `kubeguard.cluster.components`, and a
node's kubelet unit and environment files to `kubeguard.cluster.kubelet_flags`. Whatever
cannot be read lands in `Snapshot.problems` as one line naming file:line; loading goes on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from kubeguard.cluster import components, kubelet_flags
from kubeguard.cluster.manifests import Document, discover, node_at, node_line, read_documents
from kubeguard.cluster.shape import dotted, shape_warnings
from kubeguard.cluster.snapshot import K8sObject, LoadProblem, Snapshot, SourceRef
from kubeguard.perf import gc_paused

PARALLEL_MIN_FILES = 64  # below this, starting processes costs more than it saves
# Built-in kinds kubeguard understands (others from built-in API groups are reported as unknown).
KNOWN_KINDS = frozenset({
    "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController",
    "Service", "Endpoints", "EndpointSlice", "Ingress", "IngressClass", "NetworkPolicy", "ServiceAccount",
    "Secret", "ConfigMap", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Namespace", "Node",
    "PersistentVolume", "PersistentVolumeClaim", "StorageClass", "LimitRange", "ResourceQuota",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "PriorityClass", "RuntimeClass", "PodSecurityPolicy",
    "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "APIService", "CertificateSigningRequest",
    "Lease", "Event", "ControllerRevision", "CSIDriver", "CSINode", "VolumeAttachment", "PodTemplate",
    "ComponentStatus", "FlowSchema", "PriorityLevelConfiguration",
})
# API groups that ship with Kubernetes: a kind there that is not in KNOWN_KINDS is a typo or unsupported.
_BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "policy", "autoscaling",
    "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "apiregistration.k8s.io",
    "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "node.k8s.io",
    "scheduling.k8s.io", "flowcontrol.apiserver.k8s.io", "extensions",
})


def load_path(path: str | Path) -> Snapshot:
    """Snapshot of everything under one file or directory."""
    return load_paths([path])


def load_paths(paths: Iterable[str | Path], snapshot: Snapshot | None = None) -> Snapshot:
    """Snapshot of everything under several files or directories (added to `snapshot` if given)."""
    snap = snapshot if snapshot is not None else Snapshot()
    with gc_paused():
        for path in paths:
            files = discover(Path(path), snap.problems, also=kubelet_flags.is_flags_file)
            flag_files = [file for file in files if kubelet_flags.is_flags_file(file)]
            _load_files([file for file in files if not kubelet_flags.is_flags_file(file)], snap)
            if flag_files:  # after the files they refer to (the kubelet's --config), which may be anywhere
                kubelet_flags.apply(flag_files, snap.components, snap.problems)
    return snap


def load_workers(files: int) -> int:
    """Processes to parse `files` files with: one for small sets, else one per CPU (at most 4).

    `$KUBEGUARD_LOAD_WORKERS` overrides the choice (1 forces a single process).
    """
    explicit = os.environ.get("KUBEGUARD_LOAD_WORKERS", "")
    if explicit.isdigit():
        return max(1, min(int(explicit), files))
    if files < PARALLEL_MIN_FILES:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def _load_files(files: list[Path], snap: Snapshot) -> None:
    """Load files in order; many files are parsed by several processes (YAML parsing is CPU-bound)."""
    workers = load_workers(len(files))
    if workers > 1:
        size = -(-len(files) // (workers * 4))  # contiguous chunks, several per worker to balance
        chunks = [files[i:i + size] for i in range(0, len(files), size)]
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_load_chunk, chunks))
        except (OSError, BrokenProcessPool):
            parts = None  # no processes here (sandbox, limits): parse in this one
        if parts is not None:
            for part in parts:  # in file order, so the snapshot is the same as a serial load
                snap.extend(part.objects)
                snap.components.extend(part.components)
                snap.problems.extend(part.problems)
                snap.warnings.extend(part.warnings)
            return
    for file in files:
        load_file(file, snap)


def _load_chunk(files: list[Path]) -> Snapshot:
    part = Snapshot()
    for file in files:
        load_file(file, part)
    return part


def load_file(file: Path, snap: Snapshot) -> None:
    """Add one file's objects and component configs to `snap`."""
    config_docs: list[Document] = []
    for doc in read_documents(file, snap.problems, snap.warnings):
        _add_document(doc, snap, config_docs)
    if config_docs:
        snap.components.extend(components.from_config_documents(config_docs, snap.problems))


def _add_document(doc: Document, snap: Snapshot, config_docs: list[Document]) -> None:
    value = doc.value
    if value is None:
        return
    if not isinstance(value, dict):
        snap.problems.append(LoadProblem(str(doc.source), f"not a Kubernetes object (a {_type_name(value)})"))
        return
    kind = value.get("kind")
    if not isinstance(kind, str) or not kind:
        snap.problems.append(LoadProblem(str(doc.source), "not a Kubernetes object (no `kind`)"))
        return
    if components.is_config_kind(value):
        config_docs.append(doc)
        return
    items = value.get("items")
    if kind.endswith("List") and isinstance(items, list):
        for index, item in enumerate(items):
            _add_object(item, _item_source(doc, index), snap, doc, index)
        return
    _add_object(value, doc.source, snap, doc, None)


def _item_source(doc: Document, index: int) -> SourceRef:
    if doc.item_lines is not None and index < len(doc.item_lines):
        return SourceRef(doc.source.file, doc.item_lines[index])
    return node_line(doc.node, doc.source, "items", index)


def _add_object(raw: Any, source: SourceRef, snap: Snapshot, doc: Document, index: int | None) -> None:
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not raw.get("kind"):
        snap.problems.append(LoadProblem(str(source), "list item is not a Kubernetes object (no `kind`)"))
        return
    kind = raw["kind"]
    api_version = str(raw.get("apiVersion", ""))
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if kind not in KNOWN_KINDS and group in _BUILTIN_GROUPS:
        snap.problems.append(LoadProblem(str(source), f"unknown kind {kind!r} (apiVersion {api_version or '?'}): "
                                                      "not checked"))
        return
    if not isinstance(raw.get("metadata", {}), dict):
        snap.problems.append(LoadProblem(str(source), f"{kind}: `metadata` is not a mapping"))
        return
    obj = K8sObject(raw, source)
    snap.add(obj)
    node = doc.node if index is None else node_at(doc.node, "items", index)
    for path, why in shape_warnings(raw):
        where = node_line(node, source, *path) if node is not None else source
        snap.warnings.append(LoadProblem(str(where), f"{kind} {obj.name}: `{dotted(path)}` {why}"))
    if kind == "Pod":
        component = components.from_static_pod(obj, node, snap.problems)
        if component is not None:
            snap.components.append(component)


def _type_name(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "value")
