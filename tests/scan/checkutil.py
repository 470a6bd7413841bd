"""Helpers for check tests: a Snapshot from inline YAML, findings as (check, resource) pairs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from kubeguard.cluster.loader import load_path
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
    """The folder as `kubeguard scan` reads it (the real loader), failing on any load problem."""
    snap = load_path(root)
    assert not snap.problems, [str(p) for p in snap.problems]
    return snap


def check_findings(snapshot: Snapshot) -> list[Finding]:
    """Every finding of the posture engine (all registered checks, suppressions applied)."""
    from kubeguard.posture.check_runner import run_checks

    return run_checks(snapshot)
