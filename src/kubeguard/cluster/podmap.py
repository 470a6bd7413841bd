"""Pod identity lookups for runtime lanes: pod IP, container id and pod uid -> Workload.

Built from running Pods (their `status`), as found in a Snapshot, a `kubectl get pods -o json`
dump, the kubelet's `/pods` answer, or kubeguard's own Snapshot JSON (`--pods FILE`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeguard.cluster.owners import WorkloadRef, owner_of
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Workload


class PodMapError(Exception):
    """The pods file could not be read; the message names the file and the problem."""


def strip_runtime_prefix(container_id: str) -> str:
    """``containerd://abc...`` -> ``abc...`` (also docker://, cri-o://)."""
    return container_id.split("://", 1)[-1]


@dataclass(slots=True)
class PodMap:
    """Lookups from runtime identifiers to the workload they belong to."""

    cluster: str = ""
    by_ip: dict[str, Workload] = field(default_factory=dict)
    by_container_id: dict[str, Workload] = field(default_factory=dict)
    by_pod_uid: dict[str, Workload] = field(default_factory=dict)
    owners: dict[str, WorkloadRef] = field(default_factory=dict)  # pod uid -> its workload (controller)

    def add_pod(self, pod: dict[str, Any]) -> None:
        """Index one Pod object (as the API returns it)."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        images = {c.get("name"): c.get("image", "") for c in spec.get("containers", []) if isinstance(c, dict)}
        labels = tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items()))
        base = dict(
            cluster=self.cluster,
            namespace=str(meta.get("namespace") or "default"),
            pod=str(meta.get("name", "")),
            pod_uid=str(meta.get("uid", "")),
            service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
            node=str(spec.get("nodeName", "")),
            labels=labels,
        )
        pod_workload = Workload(**base)
        if pod_workload.pod_uid:
            self.by_pod_uid[pod_workload.pod_uid] = pod_workload
            self.owners[pod_workload.pod_uid] = owner_of(pod)
        if not spec.get("hostNetwork"):
            ips = [status.get("podIP")] + [i.get("ip") for i in status.get("podIPs") or [] if isinstance(i, dict)]
            for ip in ips:
                if ip:
                    self.by_ip[str(ip)] = pod_workload
        statuses = list(status.get("containerStatuses") or []) + list(status.get("initContainerStatuses") or [])
        for cs in statuses:
            cid = strip_runtime_prefix(str(cs.get("containerID") or ""))
            if cid:
                name = str(cs.get("name", ""))
                self.by_container_id[cid] = Workload(
                    **base, container=name, image=str(cs.get("image") or images.get(name, "")), container_id=cid,
                )

    def container(self, container_id: str) -> Workload | None:
        """Workload of a container id; accepts the full 64-hex id or Falco's 12-char short id."""
        found = self.by_container_id.get(container_id)
        if found is None and len(container_id) == 12:
            for cid, workload in self.by_container_id.items():
                if cid.startswith(container_id):
                    return workload
        return found

    @classmethod
    def from_pods(cls, pods: Iterable[dict[str, Any]], cluster: str = "") -> PodMap:
        podmap = cls(cluster=cluster)
        for pod in pods:
            if isinstance(pod, dict) and pod.get("kind", "Pod") == "Pod":
                podmap.add_pod(pod)
        return podmap

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> PodMap:
        return cls.from_pods((o.raw for o in snapshot.of_kind("Pod")), cluster=snapshot.cluster)

    @classmethod
    def from_file(cls, path: Path) -> PodMap:
        """Read a Snapshot JSON, a `kubectl get pods -o json` List, or the kubelet's /pods answer."""
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise PodMapError(f"{path}: cannot read pods file: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PodMapError(f"{path}: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PodMapError(f"{path}: expected a JSON object (Snapshot or List of Pods)")
        if data.get("kind") == "KubeguardSnapshot":
            return cls.from_snapshot(Snapshot.from_dict(data))
        items = data.get("items")
        if isinstance(items, list):
            return cls.from_pods(items)
        if data.get("kind") == "Pod":
            return cls.from_pods([data])
        raise PodMapError(f"{path}: no pods found (expected a Snapshot, a List of Pods or a Pod)")
