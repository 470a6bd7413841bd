"""`kubeguard demo`: walk through the Tesla 2018 breach (the steps live in scenarios/tesla.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout
from kubeguard.scenarios.tesla import run_demo


def demo(
    examples: Path = typer.Option(None, "--examples", help="Folder holding tesla/ (default: the bundled examples)."),
) -> None:
    """Walk through the Tesla 2018 breach: what kubeguard shows at each stage.

    Exit codes: 0 every step showed what it should, 1 a step did not, 2 bad --examples folder.
    """
    try:
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
