"""`kubeguard scan`: posture of manifests, dumps, control-plane configs or a live cluster."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stderr, stdout, warn
from kubeguard.cluster.loader import load_paths
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Severity, now_iso
from kubeguard.perf import gc_paused
from kubeguard.posture.check_runner import run_checks
from kubeguard.posture.report import FORMATS, ScanResult, render
from kubeguard.posture.suppress import Exception_, load_exceptions
from kubeguard.store.alerts import AlertStore, StoreError

EXIT_FINDINGS = 1  # a finding at or above --fail-on
EXIT_UNREADABLE = 2  # usage error, or nothing at all could be read


def scan(
    paths: list[Path] = typer.Argument(None, help="Manifest files/folders, kubectl -o json dumps, kubeadm/kind/"
                                                  "kubelet configs. None: scan the live cluster.",
                                       show_default=False),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="Scan the live cluster of this kubeconfig."),
    context: str = typer.Option(None, "--context", help="kubeconfig context (default: the current one)."),
    output: str = typer.Option("table", "--output", "-o", help="table, json, sarif or junit."),
    fail_on: str = typer.Option(None, "--fail-on", help="Exit 1 when a finding has this severity or worse."),
    exceptions: Path = typer.Option(None, "--exceptions", help="YAML file of suppression rules."),
    store: bool = typer.Option(False, "--store", help="Also write the findings into the alert store."),
    db: Path = typer.Option(None, "--db", help="Alert store (default $KUBEGUARD_DB or ~/.local/share/kubeguard)."),
    attack_paths: bool = typer.Option(False, "--paths", help="Add attack paths and choke points (-o table)."),
) -> None:
    """Posture scan: control plane, RBAC, workloads and exposure, with file:line for offline input."""
    try:
        code = run_scan(paths or [], kubeconfig, context, output, fail_on, exceptions, store, db, attack_paths)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def run_scan(paths: list[Path], kubeconfig: Path | None, context: str | None, output: str, fail_on: str | None,
             exceptions: Path | None, store: bool, db: Path | None, attack_paths: bool = False) -> int:
    """The scan command without Typer: returns the exit code, raises UserError for usage mistakes."""
    if output not in FORMATS:
        raise UserError(f"--output: expected one of {', '.join(FORMATS)}, got {output!r}")
    if attack_paths and output != "table":
        raise UserError("--paths goes with -o table; for machine-readable paths use `kubeguard paths -o json`")
    threshold = None
    if fail_on is not None:
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise UserError(f"--fail-on: {exc}") from exc
    rules: list[Exception_] = load_exceptions(exceptions) if exceptions is not None else []
    with gc_paused():
        snapshot, target = _load(paths, kubeconfig, context, progress=output == "table")
        result = ScanResult(run_checks(snapshot, rules), snapshot.problems, target)
        if output != "table":
            for problem in snapshot.problems:
                warn(f"not read: {problem}")
        for warning in snapshot.warnings:
            warn(str(warning))
        render(result, output, stdout)
        if attack_paths:
            from kubeguard.posture.paths.commands import print_scan_paths

            print_scan_paths(snapshot, result.active)
    if store:
        _store(result, db)
    if not snapshot.objects and not snapshot.components and snapshot.problems:
        return EXIT_UNREADABLE
    if threshold is not None and any(f.severity >= threshold for f in result.active):
        return EXIT_FINDINGS
    return 0


def _load(paths: list[Path], kubeconfig: Path | None, context: str | None, progress: bool) -> tuple[Snapshot, str]:
    snapshot = Snapshot()
    targets = [str(p) for p in paths]
    if paths:
        load_paths(paths, snapshot)
    if not paths or kubeconfig is not None or context is not None:
        from kubeguard.cluster.live import load_live

        live = load_live(kubeconfig, context, progress_console=stderr if progress else None)
        snapshot.objects.extend(live.objects)
        snapshot.components.extend(live.components)
        snapshot.problems.extend(live.problems)
        snapshot.warnings.extend(live.warnings)
        snapshot.cluster = live.cluster
        targets.append(f"cluster {live.cluster}")
    return snapshot, ", ".join(targets)


def _store(result: ScanResult, db: Path | None) -> None:
    scan_id = "scan-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    try:
        with AlertStore(db) as alert_store:
            alert_store.add_findings(scan_id, now_iso(), result.findings)
    except (StoreError, sqlite3.Error) as exc:
        raise UserError(f"alert store: {exc}") from exc
