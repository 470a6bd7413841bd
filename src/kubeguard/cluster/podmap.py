"""Pod identity lookups for runtime lanes: pod IP, container id and pod uid -> Workload.

Built from running Pods (their `status`), as found in a Snapshot, a `kubectl get pods -o json`
dump, the kubelet's `/pods` answer, or kubeguard's own Snapshot JSON (`--pods FILE`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubeguard.cluster.bounds import InputError, loads_json, read_bounded
from kubeguard.cluster.manifest_fields import as_dict, dicts
from kubeguard.cluster.owners import WorkloadRef, owner_of
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Workload


class PodMapError(Exception):
    """The pods file could not be read; the message names the file and the problem."""


def host_path_mounts(spec: dict[str, Any], container: dict[str, Any]) -> list[dict[str, str]]:
    """Falco's container.mounts of a container, as far as its pod spec says: the hostPath volumes it mounts, each
    {source (host path), dest (path in the container), mode, rdwr, propagation} (the runtime's own mounts, such
    as /etc/hosts from the kubelet's pod folder, are not in the spec)."""
    host_paths = {v.get("name"): _text(as_dict(v.get("hostPath")).get("path")) for v in dicts(spec.get("volumes"))
                  if isinstance(v.get("hostPath"), dict)}
    out: list[dict[str, str]] = []
    for mount in dicts(container.get("volumeMounts")):
        source = host_paths.get(mount.get("name"))
        if source:
            read_only = mount.get("readOnly") is True
            propagation = {"Bidirectional": "rshared", "HostToContainer": "rslave"}.get(
                _text(mount.get("mountPropagation")), "rprivate")
            out.append({"source": source, "dest": _text(mount.get("mountPath")), "mode": "ro" if read_only else "",
                        "rdwr": "false" if read_only else "true", "propagation": propagation})
    return out


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
    privileged: set[str] = field(default_factory=set)  # container ids whose spec says securityContext.privileged
    mounts: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # container id -> its hostPath mounts

    def add_pod(self, pod: dict[str, Any]) -> None:
        """Index one Pod object (as the API returns it); fields of the wrong type count as absent."""
        meta = as_dict(pod.get("metadata"))
        spec = as_dict(pod.get("spec"))
        status = as_dict(pod.get("status"))
        containers = (dicts(spec.get("containers")) + dicts(spec.get("initContainers"))
                      + dicts(spec.get("ephemeralContainers")))  # kubectl debug's containers are the pod's too
        images = {c.get("name"): c.get("image", "") for c in dicts(spec.get("containers"))}
        privileged = {c.get("name") for c in containers if as_dict(c.get("securityContext")).get("privileged") is True}
        mounts = {c.get("name"): host_path_mounts(spec, c) for c in containers}
        labels = tuple(sorted((str(k), str(v)) for k, v in as_dict(meta.get("labels")).items()))
        pod_workload = Workload(
            cluster=self.cluster,
            namespace=_text(meta.get("namespace")) or "default",
            pod=_text(meta.get("name")),
            pod_uid=_text(meta.get("uid")),
            service_account=_text(spec.get("serviceAccountName")) or _text(spec.get("serviceAccount")) or "default",
            node=_text(spec.get("nodeName")),
            labels=labels,
        )
        if pod_workload.pod_uid:
            self.by_pod_uid[pod_workload.pod_uid] = pod_workload
            self.owners[pod_workload.pod_uid] = owner_of(pod)
        if spec.get("hostNetwork") is not True:
            ips = [status.get("podIP")] + [i.get("ip") for i in dicts(status.get("podIPs"))]
            for ip in ips:
                if ip and isinstance(ip, str):
                    self.by_ip[ip] = pod_workload
        statuses = (dicts(status.get("containerStatuses")) + dicts(status.get("initContainerStatuses"))
                    + dicts(status.get("ephemeralContainerStatuses")))
        for cs in statuses:
            cid = strip_runtime_prefix(_text(cs.get("containerID")))
            if cid:
                name = _text(cs.get("name"))
                self.by_container_id[cid] = replace(
                    pod_workload, container=name, image=_text(cs.get("image")) or _text(images.get(name)),
                    container_id=cid,
                )
                if name in privileged:
                    self.privileged.add(cid)
                if mounts.get(name):
                    self.mounts[cid] = mounts[name]

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
        """Read a Snapshot JSON, a `kubectl get pods -o json` List, or the kubelet's /pods answer.

        Within the bounds of `kubeguard.cluster.bounds` (size, depth, numbers); raises PodMapError.
        """
        try:
            data, _ = loads_json(read_bounded(path).decode("utf-8-sig"))
        except OSError as exc:
            raise PodMapError(f"{path}: cannot read pods file: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise PodMapError(f"{path}: not JSON (line {exc.lineno}): {exc.msg}") from exc
        except UnicodeDecodeError as exc:
            raise PodMapError(f"{path}: pods file is not UTF-8 text") from exc
        except InputError as exc:
            raise PodMapError(f"{path}{f':{exc.line}' if exc.line else ''}: pods file: {exc.message}") from exc
        if not isinstance(data, dict):
            raise PodMapError(f"{path}: expected a JSON object (Snapshot or List of Pods)")
        if data.get("kind") == "KubeguardSnapshot":
            objects = (item.get("object") for item in dicts(data.get("objects")))
            return cls.from_pods((o for o in objects if isinstance(o, dict)), cluster=_text(data.get("cluster")))
        items = data.get("items")
        if isinstance(items, list):
            return cls.from_pods(items)
        if data.get("kind") == "Pod":
            return cls.from_pods([data])
        raise PodMapError(f"{path}: no pods found (expected a Snapshot, a List of Pods or a Pod)")


def _text(value: Any) -> str:
    """A scalar field as text; a mapping, list or null (a broken file) is empty."""
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
