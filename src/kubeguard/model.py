"""The shared vocabulary: every lane of kubeguard ends in a `Finding` or an `Alert`.

- `Finding`: a standing condition of the cluster (posture checks, attack-path choke points).
- `Alert`: something that happened (rule engine on kernel events, DPI on packets, the agent itself).
- `Event`: one observation, a mapping keyed by Falco field names (`proc.name`, `fd.sip`, ...).
- `Workload`: who it concerns (cluster, namespace, pod, container, image, service account, node).

ATT&CK technique ids (``T1610``) and Microsoft Threat Matrix for Kubernetes ids (``MS-TA9013``)
travel in `mitre` on both records.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

MITRE_ID = re.compile(r"^(T\d{4}(\.\d{3})?|TA\d{4}|MS-TA\d{4})$")


class Severity(enum.IntEnum):
    """Severity of a finding or alert; higher is worse, so they sort and compare naturally."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a severity name (case-insensitive) or a Falco priority name."""
        key = text.strip().upper()
        if key in cls.__members__:
            return cls[key]
        if key in FALCO_PRIORITY_SEVERITY:
            return FALCO_PRIORITY_SEVERITY[key]
        names = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"unknown severity {text!r} (expected one of: {names})")

    @property
    def label(self) -> str:
        return self.name.lower()


# Falco's priorities, highest first, and how they map onto our five severities.
FALCO_PRIORITIES = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "DEBUG")
FALCO_PRIORITY_SEVERITY: dict[str, Severity] = {
    "EMERGENCY": Severity.CRITICAL,
    "ALERT": Severity.CRITICAL,
    "CRITICAL": Severity.CRITICAL,
    "ERROR": Severity.HIGH,
    "WARNING": Severity.MEDIUM,
    "NOTICE": Severity.LOW,
    "INFORMATIONAL": Severity.INFO,
    "INFO": Severity.INFO,
    "DEBUG": Severity.INFO,
}
SEVERITY_FALCO_PRIORITY: dict[Severity, str] = {
    Severity.CRITICAL: "Critical",
    Severity.HIGH: "Error",
    Severity.MEDIUM: "Warning",
    Severity.LOW: "Notice",
    Severity.INFO: "Informational",
}


def falco_priority_name(priority: str) -> str:
    """Normalise a Falco priority to Falco's output spelling (``Critical``, ``Warning``, ...)."""
    key = priority.strip().upper()
    if key == "INFO":
        key = "INFORMATIONAL"
    if key not in FALCO_PRIORITIES:
        raise ValueError(f"unknown Falco priority {priority!r}")
    return key.capitalize()


@dataclass(frozen=True, slots=True)
class Workload:
    """Identity of what a finding or alert concerns. Empty strings mean unknown."""

    cluster: str = ""
    namespace: str = ""
    pod: str = ""
    container: str = ""
    image: str = ""
    service_account: str = ""
    node: str = ""
    pod_uid: str = ""
    container_id: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # field by field, not dataclasses.asdict: that deep-copies and dominated large scan reports
        data = {name: getattr(self, name) for name in _WORKLOAD_FIELDS}
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        labels = data.get("labels") or {}
        fields = {k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__ and k != "labels"}
        return cls(**fields, labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())))

    def falco_fields(self) -> dict[str, Any]:
        """This identity as Falco's `k8s.*` / `container.*` fields (only the known ones)."""
        out: dict[str, Any] = {}
        pairs = (
            ("k8s.ns.name", self.namespace),
            ("k8s.pod.name", self.pod),
            ("k8s.pod.uid", self.pod_uid),
            ("container.name", self.container),
            ("container.id", self.container_id),
            ("container.image", self.image),
            ("k8s.pod.sa", self.service_account),
            ("k8s.node.name", self.node),
        )
        for key, value in pairs:
            if value:
                out[key] = value
        if self.labels:
            out["k8s.pod.labels"] = dict(self.labels)
        return out


_WORKLOAD_FIELDS = tuple(Workload.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes object a finding is about."""

    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(slots=True)
class Finding:
    """A standing condition of the cluster, produced by a posture check."""

    check: str
    category: str
    title: str
    severity: Severity
    resource: Resource
    evidence: str
    remediation: str
    mitre: tuple[str, ...] = ()
    file: str | None = None
    line: int | None = None
    workload: Workload | None = None
    suppressed: str | None = None  # the reason, when an annotation or exceptions file suppressed it

    @property
    def id(self) -> str:
        """Stable identity of this finding: check plus resource, plus the container for per-container checks."""
        base = f"{self.check}:{self.resource}"
        return f"{base}:{self.workload.container}" if self.workload and self.workload.container else base

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "category": self.category,
            "title": self.title,
            "severity": self.severity.label,
            "resource": {"kind": self.resource.kind, "namespace": self.resource.namespace,
                         "name": self.resource.name},
            "file": self.file,
            "line": self.line,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "mitre": list(self.mitre),
            "workload": self.workload.to_dict() if self.workload else None,
            "suppressed": self.suppressed,
        }


def now_iso() -> str:
    """Current time in Falco's alert time format (RFC 3339, nanoseconds, UTC)."""
    return format_time_ns(int(datetime.now(UTC).timestamp() * 1_000_000_000))


def format_time_ns(ns: int) -> str:
    """Format nanoseconds since the epoch as Falco does: ``2026-11-28T12:00:00.123456789Z``."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def stable_alert_id(*parts: str) -> str:
    """A deterministic alert id (32 hex) from what identifies it: its origin, its event, its rule.

    The same parts give the same id in every run, so a store that keeps ids UNIQUE stores a re-run once.
    """
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(slots=True)
class Alert:
    """Something that happened. Serialises to Falco's JSON alert format."""

    rule: str
    priority: str  # Falco spelling: Emergency .. Debug
    output: str
    time: str = field(default_factory=now_iso)
    source: str = "syscall"  # syscall | network | agent | k8s_audit ...
    hostname: str = ""
    output_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    workload: Workload | None = None
    # Stable id, set where the alert is raised: the console stores each id once, whatever is resent.
    # Not part of Falco's record (`to_falco`); the console shipper sends it as "uuid".
    uuid: str = field(default_factory=lambda: uuid4().hex)

    @property
    def severity(self) -> Severity:
        return FALCO_PRIORITY_SEVERITY[self.priority.upper()]

    @property
    def mitre(self) -> list[str]:
        """ATT&CK / MS-TA ids among the tags (Falco's rules tag techniques as ``T1059`` too)."""
        return [t for t in self.tags if MITRE_ID.match(t)]

    def to_falco(self) -> dict[str, Any]:
        """Falco's JSON alert record (`json_output: true`)."""
        return {
            "time": self.time,
            "rule": self.rule,
            "priority": self.priority,
            "source": self.source,
            "hostname": self.hostname,
            "output": self.output,
            "output_fields": self.output_fields,
            "tags": list(self.tags),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_falco(), sort_keys=False, default=str)

    @classmethod
    def from_falco(cls, data: dict[str, Any]) -> Alert:
        """Rebuild an alert from Falco's JSON record (workload from its `k8s.*`/`container.*` fields)."""
        fields = dict(data.get("output_fields") or {})
        workload = workload_from_fields(fields)
        return cls(
            rule=str(data["rule"]),
            priority=falco_priority_name(str(data.get("priority", "Warning"))),
            output=str(data.get("output", "")),
            time=str(data.get("time") or now_iso()),
            source=str(data.get("source", "syscall")),
            hostname=str(data.get("hostname", "")),
            output_fields=fields,
            tags=[str(t) for t in data.get("tags") or []],
            workload=workload,
            uuid=str(data.get("uuid") or uuid4().hex),
        )


def workload_from_fields(fields: dict[str, Any]) -> Workload | None:
    """Workload identity from Falco field names; None when no identity field is set."""

    def get(key: str) -> str:
        value = fields.get(key)
        return "" if value in (None, "<NA>") else str(value)

    labels = fields.get("k8s.pod.labels")
    workload = Workload(
        namespace=get("k8s.ns.name"),
        pod=get("k8s.pod.name"),
        pod_uid=get("k8s.pod.uid"),
        container=get("container.name"),
        container_id=get("container.id"),
        image=get("container.image") or get("container.image.repository"),
        service_account=get("k8s.pod.sa"),
        node=get("k8s.node.name"),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())) if isinstance(labels, dict) else (),
    )
    return workload if any(v for v in asdict(workload).values()) else None


# The workload identity fields (Falco names) copied onto every alert raised for an event that carries
# them (like Falco's -pk), by the rule engine and by the agent for its own alerts.
IDENTITY_FIELDS = ("container.id", "container.name", "container.image", "container.image.repository",
                   "container.image.tag", "k8s.ns.name", "k8s.pod.name", "k8s.pod.uid", "k8s.pod.labels", "k8s.pod.sa",
                   "k8s.node.name")


def identity_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The workload identity fields `event` carries, with a value."""
    return {key: event[key] for key in IDENTITY_FIELDS if event.get(key) is not None}


class Event(dict[str, Any]):
    """One observation keyed by Falco field names; a missing field reads as Falco's ``<NA>``.

    Kept a plain dict subclass so the rule engine's compiled conditions index it at dict speed.
    """

    NA = "<NA>"

    def field(self, name: str) -> Any:
        return self.get(name, self.NA)

    @property
    def workload(self) -> Workload | None:
        return workload_from_fields(self)
