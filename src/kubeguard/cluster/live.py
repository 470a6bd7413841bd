"""Live loading: read a cluster through the official `kubernetes` client into a Snapshot.

Read-only: only GET list requests (paged), plus each node's kubelet `/configz` through the API
server proxy when RBAC allows it. Credentials come from `--kubeconfig`/`--context`, else the usual
resolution ($KUBECONFIG, ~/.kube/config), else the in-cluster service account. Objects keep the
raw JSON the API returns (`kind`/`apiVersion` filled in from the list). Secret values are dropped
on arrival: the checks need a Secret's type and keys, never its data.
An endpoint that fails is one `LoadProblem` naming it; the other endpoints are still read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from urllib3.exceptions import HTTPError

from kubeguard.cluster import components
from kubeguard.cluster.manifests import Document, one_line, read_documents
from kubeguard.cluster.snapshot import K8sObject, LoadProblem, Snapshot, SourceRef
from kubeguard.errors import KubeguardError


class KubeconfigError(KubeguardError):
    """No usable cluster configuration (kubeconfig missing, malformed or rejected)."""


PAGE_SIZE = 500
TIMEOUT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A list endpoint and the kind/apiVersion of its items."""

    path: str
    kind: str
    api_version: str


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/api/v1/namespaces", "Namespace", "v1"),
    Endpoint("/api/v1/nodes", "Node", "v1"),
    Endpoint("/api/v1/pods", "Pod", "v1"),
    Endpoint("/api/v1/services", "Service", "v1"),
    Endpoint("/api/v1/serviceaccounts", "ServiceAccount", "v1"),
    Endpoint("/api/v1/secrets", "Secret", "v1"),
    Endpoint("/api/v1/configmaps", "ConfigMap", "v1"),
    Endpoint("/api/v1/replicationcontrollers", "ReplicationController", "v1"),
    Endpoint("/apis/apps/v1/deployments", "Deployment", "apps/v1"),
    Endpoint("/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1"),
    Endpoint("/apis/apps/v1/statefulsets", "StatefulSet", "apps/v1"),
    Endpoint("/apis/apps/v1/daemonsets", "DaemonSet", "apps/v1"),
    Endpoint("/apis/batch/v1/jobs", "Job", "batch/v1"),
    Endpoint("/apis/batch/v1/cronjobs", "CronJob", "batch/v1"),
    Endpoint("/apis/networking.k8s.io/v1/ingresses", "Ingress", "networking.k8s.io/v1"),
    Endpoint("/apis/networking.k8s.io/v1/networkpolicies", "NetworkPolicy", "networking.k8s.io/v1"),
    Endpoint("/apis/rbac.authorization.k8s.io/v1/roles", "Role", "rbac.authorization.k8s.io/v1"),
    Endpoint("/apis/rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", "rbac.authorization.k8s.io/v1"),
    Endpoint("/apis/rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", "rbac.authorization.k8s.io/v1"),
    Endpoint("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding",
             "rbac.authorization.k8s.io/v1"),
)


def api_client(kubeconfig: Path | None, context: str | None) -> tuple[client.ApiClient, str]:
    """An ApiClient and the cluster's name; an unusable configuration is one KubeconfigError line."""
    cfg = client.Configuration()
    cfg.retries = 1
    default = Path(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
    try:
        if kubeconfig is not None or context is not None or default.exists():
            path = kubeconfig or default
            if not path.is_file():
                raise KubeconfigError(f"kubeconfig {path}: {'not a regular file' if path.exists() else 'no such file'}")
            _check_kubeconfig(path)
            config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg,
                                    persist_config=False)
            _, active = config.list_kube_config_contexts(config_file=str(path))
            name = context or (active or {}).get("name", "")
        elif not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise KubeconfigError(f"no kubeconfig ({default} does not exist) and not running inside a cluster: "
                                  "give manifest PATHs to scan, or --kubeconfig FILE")
        else:
            config.load_incluster_config(client_configuration=cfg)
            name = "in-cluster"
    except KubeconfigError:
        raise
    except ConfigException as exc:
        where = f"kubeconfig {kubeconfig or default}" if (kubeconfig or default.exists()) else "in-cluster config"
        raise KubeconfigError(f"{where}: {one_line(exc)}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise KubeconfigError(f"kubeconfig {kubeconfig or default}{line}: malformed YAML: {exc.problem}") from exc
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:  # unreadable file
        raise KubeconfigError(f"kubeconfig {kubeconfig or default}: cannot read: {one_line(exc)}") from exc
    return client.ApiClient(cfg), name or cfg.host


def _check_kubeconfig(path: Path) -> None:
    """Read the kubeconfig within the bounds first (size, depth, aliases): the client's own YAML
    reader would recurse through a hostile file until RecursionError."""
    problems: list[LoadProblem] = []
    for _ in read_documents(path, problems):
        pass
    if problems:
        raise KubeconfigError(f"kubeconfig {problems[0]}")


def load_live(kubeconfig: Path | None = None, context: str | None = None,
              progress_console: Console | None = None) -> Snapshot:
    """Snapshot of the cluster the configuration points at (read-only)."""
    api, name = api_client(kubeconfig, context)
    snap = Snapshot(cluster=name)
    host = api.configuration.host
    with api, Progress(TextColumn("[bold]reading[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                       console=progress_console or Console(quiet=True), transient=True) as progress:
        task = progress.add_task("cluster", total=len(ENDPOINTS))
        for endpoint in ENDPOINTS:
            progress.update(task, description=endpoint.path)
            try:
                for raw in _list(api, endpoint):
                    _add(snap, raw, SourceRef(f"{host}{endpoint.path}"))
            except _Unreachable as exc:
                snap.problems.append(LoadProblem(f"{host}{endpoint.path}", str(exc)))
                break
            except _Failed as exc:
                snap.problems.append(LoadProblem(f"{host}{endpoint.path}", str(exc)))
            progress.advance(task)
        for node in [o.name for o in snap.of_kind("Node")]:
            progress.update(task, description=f"kubelet configz of {node}")
            _add_kubelet(api, snap, node)
    return snap


class _Failed(Exception):
    """One endpoint failed (HTTP error, bad JSON)."""


class _Unreachable(_Failed):
    """The API server cannot be reached, or refuses the credentials: stop trying the other endpoints."""


def _get(api: client.ApiClient, path: str, query: list[tuple[str, Any]]) -> dict[str, Any]:
    try:
        request = api.param_serialize("GET", path, query_params=query, header_params={"Accept": "application/json"},
                                      auth_settings=["BearerToken"])
        response = api.call_api(*request, _request_timeout=TIMEOUT_SECONDS)
        body = response.read()
        if response.status == 401:  # the credentials are refused everywhere: stop here
            raise _Unreachable("HTTP 401 Unauthorized: the API server refused the credentials")
        if not 200 <= response.status < 300:
            raise _Failed(f"HTTP {response.status} {response.reason or ''}".strip())
        data = json.loads(body)
    except ApiException as exc:
        raise _Failed(f"HTTP {exc.status} {exc.reason or ''}".strip()) from exc
    except HTTPError as exc:
        raise _Unreachable(f"cannot reach the API server: {one_line(exc)}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Failed(f"not JSON: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise _Failed("not a JSON object")
    return data


def _list(api: client.ApiClient, endpoint: Endpoint) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
        if token:
            query.append(("continue", token))
        data = _get(api, endpoint.path, query)
        page = data.get("items")
        if not isinstance(page, list):
            raise _Failed("answer has no `items` list")
        for raw in page:
            if isinstance(raw, dict):
                raw.setdefault("kind", endpoint.kind)
                raw.setdefault("apiVersion", endpoint.api_version)
                items.append(raw)
        meta = data.get("metadata")
        token = str(meta.get("continue") or "") if isinstance(meta, dict) else ""
        if not token:
            return items


def _add(snap: Snapshot, raw: dict[str, Any], source: SourceRef) -> None:
    if raw["kind"] == "Secret":
        for key in ("data", "stringData"):
            if isinstance(raw.get(key), dict):
                raw[key] = dict.fromkeys(raw[key], "")
    obj = K8sObject(raw, source)
    snap.add(obj)
    if obj.kind == "Pod" and obj.namespace == "kube-system":
        component = components.from_static_pod(obj, None, snap.problems)
        if component is not None:
            snap.components.append(component)


def _add_kubelet(api: client.ApiClient, snap: Snapshot, node: str) -> None:
    """The kubelet's effective configuration from /configz (needs nodes/proxy: often refused)."""
    path = f"/api/v1/nodes/{node}/proxy/configz"
    where = SourceRef(f"{api.configuration.host}{path}")
    try:
        data = _get(api, path, [])
    except _Failed as exc:
        snap.problems.append(LoadProblem(str(where), f"kubelet configuration not read: {exc}"))
        return
    kubelet = data.get("kubeletconfig")
    if not isinstance(kubelet, dict):
        snap.problems.append(LoadProblem(str(where), "kubelet configuration not read: no `kubeletconfig`"))
        return
    doc = Document({**kubelet, "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"},
                   where)
    for kubelet_config in components.from_config_documents([doc], snap.problems):
        kubelet_config.node = node
        snap.components.append(kubelet_config)

