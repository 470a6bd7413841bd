"""Demo step: the Tesla kill chain as attack paths, internet -> cloud data and -> compute hijack."""

from __future__ import annotations

from typing import Any

from kubeguard.posture.paths.commands import analyse
from kubeguard.posture.paths.graph import CLOUD_DATA, CLUSTER_ADMIN, COMPUTE_HIJACK, INTERNET
from kubeguard.posture.paths.render import print_answers


def tesla_attack_paths(ctx: Any) -> bool:
    """Attack paths: the Tesla kill chain from the internet to cloud data and compute hijack, with choke points."""
    snapshot = ctx.notes.get("tesla_snapshot")
    findings = ctx.notes.get("tesla_findings")
    if snapshot is None:
        target = ctx.examples / "tesla"
        if not target.is_dir():
            ctx.console.print(f"{target} is not there: no attack paths to show")
            return True
        from kubeguard.cluster.loader import load_path
        from kubeguard.posture.engine import run_checks

        snapshot = load_path(target)
        findings = run_checks(snapshot)
    graph, answers = analyse(snapshot, [f for f in findings or [] if not f.suppressed], INTERNET,
                             [CLOUD_DATA, COMPUTE_HIJACK], limit=3)
    print_answers(ctx.console, graph, answers)
    chain = all(a.paths and CLUSTER_ADMIN in a.paths[0].nodes for a in answers)
    closed = all(a.cut and a.cut_complete for a in answers)
    ctx.console.print(f"Tesla chain internet -> cluster-admin -> cloud data / compute hijack: "
                      f"{'found' if chain else 'NOT found'}; smallest fix: "
                      + ", ".join(sorted({f for a in answers for f in a.cut})))
    return chain and closed
