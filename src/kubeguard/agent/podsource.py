"""Where the agent learns which pod a container belongs to: a pods file, the kubelet, or the API server.

Each source keeps a `PodMap` current. A lookup that misses asks the source to refresh (at most once
per `min_refresh` seconds), because a container the agent sees for the first time usually belongs
to a pod that just started.

- `FilePodSource`: ``--pods FILE`` (Snapshot JSON, a ``kubectl get pods -o json`` List, or the
  kubelet's /pods answer); re-read when the file changes.
- `KubeletPodSource`: ``GET https://localhost:10250/pods`` with the pod's service-account token.
- `ApiPodSource`: the API server through the official client (in-cluster config, else kubeconfig),
  pods of this node only (``spec.nodeName`` field selector).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubeguard.cluster.podmap import PodMap, PodMapError
from kubeguard.model import Workload

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class PodSourceError(Exception):
    """A pod source could not be read; one line naming the source."""


class PodSource:
    """A PodMap kept fresh by `load()`; subclasses say where the pods come from."""

    name = "none"

    def __init__(self, min_refresh: float = 2.0) -> None:
        self.min_refresh = min_refresh
        self.podmap = PodMap()
        self._last_refresh = float("-inf")
        self._lock = threading.Lock()
        self.refreshes = 0
        self.errors = 0
        self.last_error = ""

    def load(self) -> PodMap:
        """Read the pods now (raises PodSourceError)."""
        return PodMap()

    def refresh(self, force: bool = False) -> bool:
        """Reload when allowed by the rate limit; keeps the old map on error. Returns True when reloaded."""
        with self._lock:
            if not force and time.monotonic() - self._last_refresh < self.min_refresh:
                return False
            self._last_refresh = time.monotonic()
            try:
                self.podmap = self.load()
            except PodSourceError as exc:
                self.errors += 1
                self.last_error = str(exc)
                return False
            self.refreshes += 1
            return True

    def workload(self, container_id: str, pod_uid: str = "") -> Workload | None:
        """The workload of a container (or, failing that, of its pod); refreshes once on a miss."""
        for attempt in range(2):
            found = self.podmap.container(container_id)
            if found is None and pod_uid:
                pod = self.podmap.by_pod_uid.get(pod_uid)
                if pod is not None:
                    found = _with_container_id(pod, container_id)
            if found is not None or attempt == 1 or not self.refresh():
                return found
        return None


    def privileged(self, container_id: str) -> bool | None:
        """Falco's container.privileged: the container's spec says privileged; None for an unknown container."""
        if self.podmap.container(container_id) is None:
            return None
        return container_id in self.podmap.privileged


    def mounts(self, container_id: str) -> list[dict[str, str]] | None:
        """Falco's container.mounts (hostPath volumes of the container's spec); None for an unknown container."""
        if self.podmap.container(container_id) is None:
            return None
        return self.podmap.mounts.get(container_id, [])


def _with_container_id(pod: Workload, container_id: str) -> Workload:
    data = pod.to_dict()
    data["container_id"] = container_id
    return Workload.from_dict(data)


class FilePodSource(PodSource):
    """Pods from a file; re-read when its modification time changes."""

    name = "file"

    def __init__(self, path: Path, min_refresh: float = 2.0) -> None:
        super().__init__(min_refresh)
        self.path = path
        self._mtime = 0.0

    def load(self) -> PodMap:
        try:
            mtime = self.path.stat().st_mtime
            podmap = PodMap.from_file(self.path)
        except OSError as exc:
            raise PodSourceError(f"{self.path}: cannot read pods file: {exc.strerror or exc}") from exc
        except PodMapError as exc:
            raise PodSourceError(str(exc)) from exc
        self._mtime = mtime
        return podmap

    def refresh(self, force: bool = False) -> bool:
        """Re-read when the file changed (a stat per miss is cheap, so no rate limit then)."""
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError:
            changed = False
        return super().refresh(force=True) if (changed or force) else False


class KubeletPodSource(PodSource):
    """Pods from the kubelet's read-only API (`/pods`), authenticated with a bearer token."""

    name = "kubelet"

    def __init__(self, url: str = "https://localhost:10250/pods", token_file: Path = SA_TOKEN,
                 ca_file: Path | None = None, min_refresh: float = 2.0, timeout: float = 5.0) -> None:
        super().__init__(min_refresh)
        self.url = url
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout

    def load(self) -> PodMap:
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise PodSourceError(f"kubelet {self.url}: cannot read token {self.token_file}: {exc.strerror}") from exc
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.ca_file is None:
            # The kubelet's serving certificate is self-signed unless serverTLSBootstrap is on.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as answer:
                data: Any = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise PodSourceError(f"kubelet {self.url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PodSourceError(f"kubelet {self.url}: {getattr(exc, 'reason', exc)}") from exc
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise PodSourceError(f"kubelet {self.url}: answer is not a list of pods")
        return PodMap.from_pods(items)


class ApiPodSource(PodSource):
    """Pods of one node from the API server (list with a `spec.nodeName` field selector)."""

    name = "api"

    def __init__(self, node: str, kubeconfig: str | None = None, min_refresh: float = 2.0) -> None:
        super().__init__(min_refresh)
        self.node = node
        self.kubeconfig = kubeconfig
        self._api: Any = None

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                if self.kubeconfig is None and SA_TOKEN.exists():
                    config.load_incluster_config()
                else:
                    config.load_kube_config(config_file=self.kubeconfig)
            except Exception as exc:  # the client raises several unrelated types
                raise PodSourceError(f"API server: cannot load credentials: {exc}") from exc
            self._api = client.CoreV1Api()
        return self._api

    def load(self) -> PodMap:
        api = self._client()
        selector = f"spec.nodeName={self.node}" if self.node else None
        try:
            answer = api.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False,
                                                     _request_timeout=10)
            data = json.loads(answer.data)
        except Exception as exc:  # ApiException, urllib3 errors, JSON errors
            raise PodSourceError(f"API server: cannot list pods: {getattr(exc, 'reason', exc)}") from exc
        return PodMap.from_pods(data.get("items") or [])
