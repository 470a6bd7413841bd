"""Helpers for check tests: a Snapshot from inline YAML, findings as (check, resource) pairs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from kubeguard.cluster.snapshot import K8sObject, Snapshot, SourceRef
from kubeguard.model import Finding


def snapshot_from_yaml(text: str, file: str = "inline.yaml") -> Snapshot:
    """Every document of `text` as an object, with its 1-based starting line as source."""
    snap = Snapshot()
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if isinstance(doc, dict) and doc.get("kind"):
                items = doc.get("items") if doc["kind"].endswith("List") else [doc]
                for item in items or []:
                    snap.add(K8sObject(item, SourceRef(file, node.start_mark.line + 1)))
    finally:
        loader.dispose()
    return snap


def pairs(findings: Iterable[Finding], prefix: str = "") -> set[tuple[str, str]]:
    """{(check, "Kind/ns/name")} of the findings whose check starts with `prefix`."""
    return {(f.check, str(f.resource)) for f in findings if f.check.startswith(prefix)}


def snapshot_from_dir(root: Path) -> Snapshot:
    """Every *.yaml / *.yml under `root` (sorted), each document with file and line."""
    snap = Snapshot()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml")):
        snap.extend(snapshot_from_yaml(path.read_text(), str(path)).objects)
    return snap


def check_findings(snapshot: Snapshot) -> list[Finding]:
    """Findings of the rbac, workload and exposure evaluators."""
    from kubeguard.posture.exposure import evaluate_exposure
    from kubeguard.posture.rbac_checks import evaluate_rbac
    from kubeguard.posture.workloads import evaluate_workloads

    return [f for ev in (evaluate_rbac, evaluate_workloads, evaluate_exposure) for f in ev(snapshot)]
