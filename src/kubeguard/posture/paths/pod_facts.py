"""Facts about one pod template that the attack graph needs: placement, token, mounts, escapes, keys.

Pure functions over `PodTemplate` / container dicts; no graph here.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Any

from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.cluster.snapshot import K8sObject, PodTemplate
from kubeguard.net.netpol import Endpoint, NetpolEvaluator
from kubeguard.redact import AWS_KEY_ID

METADATA_IP = ipaddress.ip_address("169.254.169.254")
AWS_ENV_NAMES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
CLOUD_ENV_NAMES = AWS_ENV_NAMES | frozenset({
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "ARM_CLIENT_SECRET",
})
# Keys of a secret that hold cloud credentials (compared lower-case).
CLOUD_SECRET_KEYS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "accesskey", "secretkey", "access_key", "secret_key",
    "credentials", "key.json", "service-account.json", "application_default_credentials.json",
    "azure_client_secret", "clientsecret", "google_application_credentials",
})
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
GKE_ANNOTATION = "iam.gke.io/gcp-service-account"
AZURE_ANNOTATION = "azure.workload.identity/client-id"
AZURE_POD_LABEL = "azure.workload.identity/use"

# Host paths whose write access gives root on the node (cron, keys, binaries, kubelet, static pods).
WRITE_SENSITIVE = (
    "/", "/etc", "/root", "/home", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/boot", "/var/spool/cron",
    "/etc/cron.d", "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/docker", "/var/lib/containerd",
)
KUBELET_PODS = "/var/lib/kubelet/pods"
VAR_LOG = "/var/log"


@dataclass(frozen=True, slots=True)
class HostMount:
    """A hostPath volume as one container mounts it."""

    path: str
    writable: bool
    volume: str


def host_mounts(pod: PodTemplate, container: dict[str, Any]) -> list[HostMount]:
    """hostPath volumes the container mounts, with whether it may write them."""
    host_volumes: dict[str, str] = {}
    for volume in pod.spec.get("volumes") or []:
        if isinstance(volume, dict) and isinstance(volume.get("hostPath"), dict):
            host_volumes[str(volume.get("name"))] = str(volume["hostPath"].get("path", ""))
    out: list[HostMount] = []
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, dict):
            continue
        name = str(mount.get("name"))
        if host_volumes.get(name):
            out.append(HostMount(host_volumes[name], not bool(mount.get("readOnly")), name))
    return out


def token_mounted(pod: PodTemplate, service_accounts: dict[tuple[str, str], K8sObject]) -> bool:
    """Whether the kubelet mounts the service-account token: the pod's setting wins, then the SA's."""
    if any(_projects_token(v) for v in pod.spec.get("volumes") or []):
        return True
    value = pod.spec.get("automountServiceAccountToken")
    if isinstance(value, bool):
        return value
    sa = service_accounts.get((pod.namespace, pod.service_account))
    if sa is not None and isinstance(sa.raw.get("automountServiceAccountToken"), bool):
        return bool(sa.raw["automountServiceAccountToken"])
    return True


def _projects_token(volume: Any) -> bool:
    if not isinstance(volume, dict) or not isinstance(volume.get("projected"), dict):
        return False
    sources = volume["projected"].get("sources") or []
    return any(isinstance(s, dict) and "serviceAccountToken" in s for s in sources)


def has_cpu_limit(container: dict[str, Any]) -> bool:
    resources = container.get("resources")
    limits = resources.get("limits") if isinstance(resources, dict) else None
    return isinstance(limits, dict) and bool(limits.get("cpu"))


def secret_refs(pod: PodTemplate, container: dict[str, Any]) -> dict[str, str]:
    """Secrets the container can read -> how (env var name, envFrom, or mount path)."""
    refs: dict[str, str] = {}
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef") if isinstance(env, dict) else None
        if isinstance(ref, dict) and ref.get("name"):
            refs.setdefault(str(ref["name"]), f"env {env.get('name')} from key {ref.get('key')}")
    for env_from in container.get("envFrom") or []:
        ref = env_from.get("secretRef") if isinstance(env_from, dict) else None
        if isinstance(ref, dict) and ref.get("name"):
            refs.setdefault(str(ref["name"]), "envFrom (all keys as env)")
    volumes: dict[str, list[str]] = {}
    for volume in pod.spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        names: list[str] = []
        if isinstance(volume.get("secret"), dict) and volume["secret"].get("secretName"):
            names.append(str(volume["secret"]["secretName"]))
        if isinstance(volume.get("projected"), dict):
            for source in volume["projected"].get("sources") or []:
                if isinstance(source, dict) and isinstance(source.get("secret"), dict):
                    names.append(str(source["secret"].get("name")))
        volumes[str(volume.get("name"))] = names
    for mount in container.get("volumeMounts") or []:
        if isinstance(mount, dict):
            for name in volumes.get(str(mount.get("name")), []):
                refs.setdefault(name, f"files under {mount.get('mountPath')}")
    return refs


def literal_cloud_env(container: dict[str, Any]) -> list[str]:
    """Names of env vars holding cloud credentials as literal values (values never returned)."""
    out: list[str] = []
    for env in container.get("env") or []:
        if not isinstance(env, dict) or "value" not in env:
            continue
        name, value = str(env.get("name", "")), str(env.get("value") or "")
        if value and (name.upper() in CLOUD_ENV_NAMES or AWS_KEY_ID.search(value)):
            out.append(name)
    return out


def literal_aws_key_id(container: dict[str, Any]) -> str | None:
    for env in container.get("env") or []:
        if isinstance(env, dict):
            match = AWS_KEY_ID.search(str(env.get("value") or ""))
            if match:
                return match.group(0)
    return None


def secret_cloud_keys(secret: K8sObject) -> list[str]:
    """Keys of a Secret that hold cloud credentials (by name, or by an AWS key id in the value)."""
    out: list[str] = []
    for field_name in ("data", "stringData"):
        data = secret.raw.get(field_name)
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            text = str(value or "")
            if field_name == "data":
                try:
                    text = base64.b64decode(text, validate=False).decode("utf-8", "replace")
                except ValueError:
                    text = ""
            if str(key).lower() in CLOUD_SECRET_KEYS or AWS_KEY_ID.search(text) or '"private_key"' in text:
                out.append(str(key))
    return out


def node_placement(pod: PodTemplate, nodes: list[K8sObject]) -> list[str] | None:
    """Node names the pod can run on (nodeName, or nodeSelector over known Nodes); None: any node."""
    node_name = pod.spec.get("nodeName")
    if node_name:
        return [str(node_name)]
    selector = pod.spec.get("nodeSelector")
    if isinstance(selector, dict) and selector and nodes:
        return [n.name for n in nodes if label_selector_selects({"matchLabels": selector}, n.labels)]
    return None


def egress_blocks_metadata(pod: PodTemplate, netpol: NetpolEvaluator) -> str | None:
    """The NetworkPolicy that keeps the pod from 169.254.169.254:80/TCP, or None when it is reachable.

    Decided by the NetworkPolicy evaluator (the one implementation of the API's semantics).
    """
    verdict = netpol.evaluate(Endpoint.of_template(pod), Endpoint.external(str(METADATA_IP)), 80, "TCP")
    if verdict.allowed or not verdict.egress.selecting:
        return None
    return f"NetworkPolicy/{verdict.egress.selecting[0]}"


def namespace_psa_blocks_privileged(namespace: K8sObject | None) -> bool:
    """Pod Security Admission enforcing baseline or restricted refuses privileged pods."""
    if namespace is None:
        return False
    level = namespace.labels.get("pod-security.kubernetes.io/enforce", "")
    return level in ("baseline", "restricted")

