"""The conditions that create attack-graph edges, as posture checks.

Each edge of the graph carries the findings that make it true; these are their checks. When the
scan already raised a finding of an equivalent check on the same resource (`EQUIVALENT_CHECKS`),
the graph refers to the scan's finding instead, so a choke point names a finding of the report.
"""

from __future__ import annotations

from kubeguard.cluster.snapshot import K8sObject
from kubeguard.model import Finding, Severity
from kubeguard.posture.registry import PostureCheck

EXPOSED_ENDPOINT = PostureCheck(
    "paths.exposed-endpoint", "exposure", "Service or Ingress reachable from outside the cluster", Severity.MEDIUM,
    "Expose only what must be public; put it behind authentication, or use ClusterIP.", ("T1190",))
UNAUTH_CONSOLE = PostureCheck(
    "paths.unauthenticated-console", "exposure", "Console that asks for no login", Severity.CRITICAL,
    "Require login on the console (dashboard: remove --enable-skip-login, use token auth) or remove it.",
    ("T1133",))
RBAC_GRANT = PostureCheck(
    "paths.dangerous-binding", "rbac", "Binding grants rights that lead to other identities or nodes",
    Severity.HIGH, "Bind a narrower role; never bind cluster-admin or secrets/exec rights to workloads.",
    ("T1078",))
TOKEN_MOUNTED = PostureCheck(
    "paths.token-mounted", "workloads", "Service-account token mounted in a pod whose identity has rights",
    Severity.MEDIUM, "Set automountServiceAccountToken: false unless the pod calls the API.", ("T1528",))
PRIVILEGED = PostureCheck(
    "paths.privileged", "workloads", "Privileged container", Severity.HIGH,
    "Remove privileged: true.", ("T1611",))
HOST_PID = PostureCheck(
    "paths.host-pid", "workloads", "Pod shares the host's PID namespace", Severity.HIGH,
    "Remove hostPID: true.", ("T1611",))
CAPABILITY = PostureCheck(
    "paths.dangerous-capability", "workloads", "Container adds an escape capability", Severity.HIGH,
    "Drop SYS_PTRACE, SYS_MODULE and SYS_ADMIN; add only what the process needs.", ("T1611",))
HOST_PATH = PostureCheck(
    "paths.sensitive-host-path", "workloads", "Sensitive host path mounted", Severity.HIGH,
    "Do not mount host paths; if one is needed, mount the narrowest path readOnly.", ("T1611",))
CLOUD_KEYS = PostureCheck(
    "paths.cloud-credentials", "workloads", "Cloud credentials reachable from the pod", Severity.HIGH,
    "Use workload identity with a narrow role instead of static keys; never put keys in env or manifests.",
    ("T1552.001",))
WORKLOAD_IDENTITY = PostureCheck(
    "paths.workload-identity", "workloads", "Service account bound to a cloud identity", Severity.LOW,
    "Bind cloud roles only to the service accounts that need them, with the narrowest policy.", ("T1078.004",))
METADATA_REACHABLE = PostureCheck(
    "paths.metadata-reachable", "workloads", "Pod can reach the cloud metadata service", Severity.MEDIUM,
    "Add an egress NetworkPolicy that blocks 169.254.169.254/32 (and use IMDSv2 with hop limit 1).",
    ("T1552.005",))
NO_LIMITS = PostureCheck(
    "paths.unbounded-compute", "workloads", "Code can run without CPU limit or quota", Severity.LOW,
    "Set CPU limits (or a LimitRange default) and a ResourceQuota in the namespace.", ("T1496",))

# Checks of the scan (posture/workload_checks.py) that state the same condition: their finding is used
# when the scan raised it, so a choke point names a finding of the report.
EQUIVALENT_CHECKS: dict[str, tuple[str, ...]] = {
    PRIVILEGED.id: ("privileged",),
    HOST_PID.id: ("host-namespace",),
    CAPABILITY.id: ("dangerous-capability",),
    HOST_PATH.id: ("host-path", "runtime-socket"),
    CLOUD_KEYS.id: ("secret-in-env",),
    TOKEN_MOUNTED.id: ("sa-token-automount",),
    NO_LIMITS.id: ("no-resource-limits",),
    EXPOSED_ENDPOINT.id: ("exposed-service",),
    UNAUTH_CONSOLE.id: ("unauthenticated-console",),
}


class FindingIndex:
    """Findings of a scan by (resource, check, container), to reuse them as edge labels.

    A lookup is O(1): a pod with thousands of containers has thousands of findings of one check, and
    every container asks for its own (scanning them all was quadratic in containers per pod).
    """

    def __init__(self, findings: list[Finding] | None = None) -> None:
        # (kind, namespace, name, check) -> container ("" for the pod) -> (position, first such finding)
        self._first: dict[tuple[str, str, str, str], dict[str, tuple[int, Finding]]] = {}
        self._any: dict[tuple[str, str, str, str], Finding] = {}
        for position, finding in enumerate(findings or []):
            key = (finding.resource.kind, finding.resource.namespace, finding.resource.name, finding.check)
            on = finding.workload.container if finding.workload else ""
            self._first.setdefault(key, {}).setdefault(on, (position, finding))
            self._any.setdefault(key, finding)

    def condition(self, check: PostureCheck, obj: K8sObject, evidence: str, container: str | None = None,
                  scan_checks: tuple[str, ...] | None = None) -> Finding:
        """The scan's equivalent finding on `obj` (and `container`) if it has one, else one of `check`."""
        for wanted in EQUIVALENT_CHECKS.get(check.id, ()) if scan_checks is None else scan_checks:
            key = (obj.kind, obj.namespace, obj.name, wanted)
            if container is None:
                found = self._any.get(key)
                if found is not None:
                    return found
                continue
            by_container = self._first.get(key)
            if by_container:
                candidates = [c for c in (by_container.get(""), by_container.get(container)) if c is not None]
                if candidates:
                    return min(candidates, key=lambda c: c[0])[1]
        return check.finding(obj, evidence)
