"""`kubeguard paths`: attack paths of a manifest folder or dump, and the hook for `scan --paths`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout, warn
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Finding
from kubeguard.posture.paths.graph import INTERNET, TARGETS, AttackGraph
from kubeguard.posture.paths.html import page
from kubeguard.posture.paths.query import Answer, analyse
from kubeguard.posture.paths.render import print_answers, to_dot, to_json

FORMATS = ("text", "json", "dot", "html")
EXIT_BAD_INPUT = 2


def emit(graph: AttackGraph, answers: list[Answer], output: str, out_file: Path | None = None) -> None:
    """Write the answers in one of `FORMATS` to stdout or `out_file`."""
    if output not in FORMATS:
        raise UserError(f"-o {output}: expected one of {', '.join(FORMATS)}")
    if output == "text":
        if out_file is not None:
            raise UserError("--out needs -o json, dot or html")
        print_answers(stdout, graph, answers)
        return
    text = {"json": to_json, "dot": to_dot, "html": page}[output](graph, answers)
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text)
    except OSError as exc:
        raise UserError(f"{out_file}: cannot write ({exc.strerror})") from exc


def paths_command(
    path: Path = typer.Argument(..., help="Manifest file or folder, or a `kubectl get -o json` dump."),
    source: str = typer.Option(INTERNET, "--from", help="internet | any-pod | pod:NAMESPACE/NAME"),
    targets: list[str] = typer.Option(
        None, "--to", help="cluster-admin | node-root | cloud-data | compute-hijack | secret:NS/NAME (repeatable; "
                           "default: the four impact targets)"),
    output: str = typer.Option("text", "-o", "--output", help="text | json | dot | html"),
    out_file: Path = typer.Option(None, "--out", help="Write json/dot/html to this file instead of stdout."),
    limit: int = typer.Option(10, "--limit", help="At most this many paths per target, easiest first."),
) -> None:
    """Attack paths from the internet (or a pod) to cluster-admin, node root, cloud data or compute hijack.

    Exit codes: 0 no path found, 1 at least one path, 2 bad input (nothing could be read, or some input
    could not be read and no path was found, so "no path" cannot be claimed).
    """
    from kubeguard.cluster.loader import load_path

    try:
        snapshot = load_path(path)
        if snapshot.problems and not snapshot.objects and not snapshot.components:
            more = len(snapshot.problems) - 1
            raise UserError(f"{snapshot.problems[0]}" + (f" (and {more} more inputs not read)" if more else ""))
        for problem in snapshot.problems:
            warn(f"not read: {problem}")
        for warning in snapshot.warnings:
            warn(str(warning))
        graph, answers = analyse(snapshot, scan_findings(snapshot), source, targets, limit)
        emit(graph, answers, output, out_file)
    except UserError as exc:
        die(str(exc), exc.code)
    if any(a.paths for a in answers):
        raise typer.Exit(1)
    raise typer.Exit(EXIT_BAD_INPUT if snapshot.problems else 0)


def scan_findings(snapshot: Snapshot) -> list[Finding]:
    """The scan's findings, so that edges are labelled with findings of the scan report."""
    from kubeguard.posture.check_runner import run_checks

    return [f for f in run_checks(snapshot) if not f.suppressed]


def print_scan_paths(snapshot: Snapshot, findings: list[Finding]) -> None:
    """The `scan --paths` section: internet to each impact target, labelled with the scan's findings."""
    from rich.rule import Rule

    stdout.print(Rule("Attack paths from the internet"))
    graph, answers = analyse(snapshot, findings, INTERNET, list(TARGETS), limit=5)
    print_answers(stdout, graph, answers)
