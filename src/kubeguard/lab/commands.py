"""`kubeguard demo --live [--protect]`: the Tesla breach in the lab, with a live timeline and an HTML report."""

from __future__ import annotations

import os
import signal
import tempfile
import types
from pathlib import Path

from rich.live import Live

from kubeguard.cliutil import UserError, stdout
from kubeguard.errors import KubeguardError
from kubeguard.lab.live import LiveResult, run_live
from kubeguard.lab.report import summary_lines, timeline_table, write_html


def _interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def live_demo(protect: bool, report: Path) -> int:
    """Run the live scenario; 0 when it showed what it should, 1 when not, 130 on Ctrl-C (after teardown)."""
    if os.geteuid() != 0:
        raise UserError("demo --live needs root (it makes network namespaces, cgroups and firewall rules); "
                        "run `kubeguard demo` for the embedded replay", code=2)
    if not report.parent.is_dir():
        raise UserError(f"--report {report}: no such directory {report.parent}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Live(console=stdout, auto_refresh=False, transient=False) as live:
            def redraw(result: LiveResult) -> None:
                live.update(timeline_table(result), refresh=True)

            work = Path(tempfile.mkdtemp(prefix="kubeguard-live-"))
            result = run_live(protect, work, on_update=redraw, progress=lambda msg: stdout.print(f"lab: {msg}"))
    except KeyboardInterrupt:
        stdout.print("demo --live: interrupted; the lab was torn down")
        return 130
    except KubeguardError as exc:
        raise UserError(str(exc), code=1) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    stdout.print()
    for line in summary_lines(result):
        stdout.print(line, markup=False)
    write_html(result, report)
    stdout.print(f"report: {report}; the run's own files (agent alerts, services' logs): {work}", markup=False)
    return 0 if result.ok() else 1
