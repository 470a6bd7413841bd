"""`kubeguard demo`: the Tesla 2018 kill chain, one step per lane of kubeguard.

`STEPS` is the ordered list of demo steps. A step is a function `(DemoContext) -> bool` (True when
it showed what it should); a lane adds its own with one line: `STEPS.append(my_step)` in its module
imported below, or by editing the list. Steps print with `ctx.console`; they must not raise for a
missing optional input (say so and return True).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.rule import Rule

from kubeguard.cliutil import UserError, die, stdout

# The findings `kubeguard scan examples/tesla` must show: each stage of the 2018 breach.
TESLA_CHECKS = ("unauthenticated-console", "rbac-cluster-admin", "secret-in-env", "no-resource-limits",
                "missing-network-policy", "exposed-service")


def examples_dir() -> Path:
    """examples/ of the source tree (editable install or run from the repo), else ./examples."""
    here = Path(__file__).resolve().parents[3] / "examples"
    if not here.is_dir():
        return Path("examples")
    try:  # shorter file names in the output when run from the repository
        return here.relative_to(Path.cwd().resolve())
    except ValueError:
        return here


@dataclass(slots=True)
class DemoContext:
    """What steps share: where the examples are, the console, and notes for later steps."""

    examples: Path
    console: Console
    notes: dict[str, object] = field(default_factory=dict)


def scan_tesla(ctx: DemoContext) -> bool:
    """Step 1: posture scan of the hand-written Tesla cluster."""
    from kubeguard.cluster.loader import load_path
    from kubeguard.posture.engine import run_checks
    from kubeguard.posture.report import ScanResult, render_table

    target = ctx.examples / "tesla"
    if not target.is_dir():
        ctx.console.print(f"{target} is not there: nothing to scan")
        return True
    snapshot = load_path(target)
    findings = run_checks(snapshot)
    ctx.notes["tesla_snapshot"] = snapshot
    ctx.notes["tesla_findings"] = findings
    render_table(ScanResult(findings, snapshot.problems, str(target)), ctx.console)
    found = {f.check for f in findings if not f.suppressed}
    missing = [c for c in TESLA_CHECKS if c not in found]
    ctx.console.print(f"Tesla breach stages found: {len(TESLA_CHECKS) - len(missing)}/{len(TESLA_CHECKS)}"
                      + (f" (missing: {', '.join(missing)})" if missing else ""))
    return not missing


Step = Callable[[DemoContext], bool]
STEPS: list[Step] = [scan_tesla]

from kubeguard.posture.paths.demo import tesla_attack_paths  # noqa: E402

STEPS.append(tesla_attack_paths)

from kubeguard.net.demo import dpi_tesla_miner  # noqa: E402

STEPS.append(dpi_tesla_miner)

from kubeguard.rules.demo import replay_tesla_events  # noqa: E402

STEPS.append(replay_tesla_events)


def check_examples(examples: Path) -> None:
    """An --examples folder must exist and hold tesla/ (UserError naming what is wrong)."""
    if not examples.exists():
        raise UserError(f"--examples {examples}: no such directory")
    if not examples.is_dir():
        raise UserError(f"--examples {examples}: not a directory")
    if not (examples / "tesla").is_dir():
        raise UserError(f"--examples {examples}: no tesla/ folder in it")


def run_demo(examples: Path | None = None, console: Console = stdout) -> int:
    """Run every step in order; the exit code is 1 if any step failed."""
    ctx = DemoContext(examples or examples_dir(), console)
    failed = []
    for number, step in enumerate(STEPS, 1):
        title = (step.__doc__ or step.__name__).strip().splitlines()[0]
        console.print(Rule(f"{number}. {title}"))
        if not step(ctx):
            failed.append(step.__name__)
    if failed:
        console.print(f"demo: steps that did not show what they should: {', '.join(failed)}")
        return 1
    console.print("demo: all steps done")
    return 0


def demo(
    examples: Path = typer.Option(None, "--examples", help="Folder holding tesla/ (default: the bundled examples)."),
) -> None:
    """Walk through the Tesla 2018 breach: what kubeguard shows at each stage.

    Exit codes: 0 every step showed what it should, 1 a step did not, 2 bad --examples folder.
    """
    try:
        if examples is not None:
            check_examples(examples)
        code = run_demo(examples)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)
