"""Write one benchmark's figures into its own section of docs/benchmarks.md.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; running
it again replaces only that section, so benchmarks never overwrite each other's figures.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nLatest measured figures; each section is rewritten by its benchmark"
    " (`python -m bench.NAME`).\n"
)


def machine() -> str:
    """One line describing where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, Python {platform.python_version()}, kernel {platform.release()}"


def load() -> str:
    """The machine's 1-min load average when the figures were written (other work makes them noisy)."""
    try:
        average = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "load average unknown"
    return f"1-min load average {average:.1f} on {os.cpu_count()} cores"


def record(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or append) the section for benchmark `name` with `markdown`, stamped with date and machine."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<!-- bench:{name} -->\n{markdown.strip()}\n\n_Measured {stamp} on {machine()}; {load()}._\n"
            f"<!-- /bench:{name} -->")
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
