"""Checks are data plus small evaluators.

A `PostureCheck` is the stable description of one condition (id, category, title, severity,
remediation, ATT&CK ids). An evaluator is a function `(Snapshot) -> Iterable[Finding]` that
may raise findings for several checks; it builds them with `PostureCheck.finding(...)` so every
finding carries its check's metadata. Modules register both at import time; `run_checks`
runs every registered evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubeguard.cluster.snapshot import K8sObject, Snapshot, SourceRef
from kubeguard.model import Finding, Resource, Severity, Workload

CATEGORIES = ("control plane", "exposure", "rbac", "workloads")


@dataclass(frozen=True, slots=True)
class PostureCheck:
    """Stable metadata of one posture check."""

    id: str
    category: str
    title: str
    severity: Severity
    remediation: str
    mitre: tuple[str, ...] = ()

    def finding(
        self,
        resource: Resource | K8sObject,
        evidence: str,
        *,
        severity: Severity | None = None,
        source: SourceRef | None = None,
        workload: Workload | None = None,
        title: str | None = None,
    ) -> Finding:
        """A finding of this check on a resource; `severity` overrides the default (e.g. raised)."""
        if isinstance(resource, K8sObject):
            source = source or resource.source
            resource = Resource(resource.kind, resource.name, resource.namespace)
        return Finding(
            check=self.id,
            category=self.category,
            title=title or self.title,
            severity=severity if severity is not None else self.severity,
            resource=resource,
            evidence=evidence,
            remediation=self.remediation,
            mitre=self.mitre,
            file=source.file if source else None,
            line=source.line if source and source.line else None,
            workload=workload,
        )


Evaluator = Callable[[Snapshot], Iterable[Finding]]

CHECKS: dict[str, PostureCheck] = {}
EVALUATORS: list[Evaluator] = []


def register(*checks: PostureCheck) -> None:
    """Register checks; an id may be registered once."""
    for check in checks:
        if check.id in CHECKS and CHECKS[check.id] != check:
            raise ValueError(f"check {check.id!r} registered twice")
        if check.category not in CATEGORIES:
            raise ValueError(f"check {check.id!r}: unknown category {check.category!r}")
        CHECKS[check.id] = check


def evaluator(func: Evaluator) -> Evaluator:
    """Decorator: register a function that yields findings for a Snapshot."""
    if func not in EVALUATORS:
        EVALUATORS.append(func)
    return func
