"""`kubeguard demo`: walk through the Tesla 2018 breach (the steps live in scenarios/tesla.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout
from kubeguard.scenarios.tesla import run_demo


def demo(
    examples: Path = typer.Option(None, "--examples", help="Folder holding tesla/ (default: the bundled examples)."),
) -> None:
    """Walk through the Tesla 2018 breach: what kubeguard shows at each stage."""
    try:
        code = run_demo(examples, stdout)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)
