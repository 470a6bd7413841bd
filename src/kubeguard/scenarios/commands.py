"""`kubeguard demo`: walk through the Tesla 2018 breach (the steps live in scenarios/tesla.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout
from kubeguard.scenarios.tesla import run_demo


def demo(
    examples: Path = typer.Option(None, "--examples", help="Folder holding tesla/ (default: the bundled examples)."),
    live: bool = typer.Option(False, "--live", help="Run the breach for real in a lab of network namespaces and "
                              "cgroups, with the agent, DPI and firewall watching (root; docs/demo.md)."),
    protect: bool = typer.Option(False, "--protect", help="With --live: the dashboard's workload policy in protect "
                                 "mode cuts the chain."),
    report: Path = typer.Option(Path("kubeguard-live-report.html"), "--report",
                                help="With --live: where the HTML report (timeline, attack path, flows) goes."),
) -> None:
    """Walk through the Tesla 2018 breach: what kubeguard shows at each stage.

    Without --live: the embedded replay (unprivileged). With --live: the real attack in a lab.
    Exit codes: 0 every step showed what it should, 1 a step did not, 2 bad input (or --live without root),
    130 interrupted (the lab is torn down first).
    """
    try:
        if protect and not live:
            raise UserError("--protect needs --live")
        if live:
            from kubeguard.lab.commands import live_demo

            raise typer.Exit(live_demo(protect, report))
        if examples is not None:
            check_examples(examples)
        code = run_demo(examples, stdout)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def check_examples(examples: Path) -> None:
    """An --examples folder must exist and hold tesla/ (UserError naming what is wrong)."""
    if not examples.exists():
        raise UserError(f"--examples {examples}: no such directory")
    if not examples.is_dir():
        raise UserError(f"--examples {examples}: not a directory")
    if not (examples / "tesla").is_dir():
        raise UserError(f"--examples {examples}: no tesla/ folder in it")
