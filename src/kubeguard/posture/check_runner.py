"""Run every posture check over a Snapshot: findings, suppressions applied, in a stable order."""

from __future__ import annotations

from collections.abc import Iterable

from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Finding
from kubeguard.perf import gc_paused

# Importing a check module registers its checks and evaluators.
from kubeguard.posture import controlplane, exposure, rbac_checks, workload_checks  # noqa: F401
from kubeguard.posture.registry import EVALUATORS
from kubeguard.posture.suppress import Exception_, apply_suppressions


def sort_key(finding: Finding) -> tuple[int, str, str, str, int, str]:
    """Worst first, then by check, resource, file, line, evidence: the same input gives the same order."""
    return (-int(finding.severity), finding.check, str(finding.resource), finding.file or "",
            finding.line or 0, finding.evidence)


def run_checks(snapshot: Snapshot, exceptions: Iterable[Exception_] = ()) -> list[Finding]:
    """Every registered evaluator over `snapshot`; suppressed findings are kept and marked."""
    with gc_paused():
        findings = [finding for evaluate in EVALUATORS for finding in evaluate(snapshot)]
        apply_suppressions(findings, snapshot, exceptions)
        findings.sort(key=sort_key)
    return findings
