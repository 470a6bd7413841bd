"""`kubeguard coverage`: the ATT&CK for Containers and Microsoft Kubernetes matrices with what covers them.

Exit codes: 0 success; 2 bad input (unknown format or matrix, unwritable file); 3 stdout failed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout
from kubeguard.coverage.matrix import CoverageDataError, Matrix, attack_matrix, ms_matrix
from kubeguard.coverage.render import rich_table, to_html, to_json

FORMATS = ("table", "json", "html")
MATRICES = ("attack", "ms", "all")


def coverage(
    output: str = typer.Option("table", "--output", "-o", help="table, json or html (a self-contained heat map)."),
    matrix: str = typer.Option("all", "--matrix", "-m",
                               help="attack (MITRE ATT&CK for Containers), ms (Microsoft Threat Matrix for "
                                    "Kubernetes) or all."),
    tests: bool = typer.Option(False, "--tests", help="Table: also list the tests that prove each technique."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Write json/html to this file instead of stdout."),
) -> None:
    """Show which ATT&CK for Containers (and Microsoft Kubernetes matrix) techniques kubeguard's rules, posture
    checks and DPI detections cover, and the test that proves each."""
    try:
        if output not in FORMATS:
            raise UserError(f"--output: expected one of {', '.join(FORMATS)}, got {output!r}")
        if matrix not in MATRICES:
            raise UserError(f"--matrix: expected one of {', '.join(MATRICES)}, got {matrix!r}")
        if file is not None and output == "table":
            raise UserError("--file: only with --output json or html")
        attack = attack_matrix()
        chosen: list[Matrix] = [m for m, on in ((attack, matrix in ("attack", "all")),
                                                (ms_matrix(attack), matrix in ("ms", "all"))) if on]
    except (UserError, CoverageDataError) as exc:
        die(str(exc), exc.code)
    if output == "table":
        for m in chosen:
            stdout.print(rich_table(m, tests=tests))
        return
    text = to_json(*chosen) if output == "json" else to_html(*chosen)
    if file is None:
        stdout.file.write(text)
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        die(f"--file {file}: cannot write: {exc.strerror or exc}")
    stdout.print(f"wrote {file} ({', '.join(f'{m.name}: {m.percent}%' for m in chosen)})")
