"""Replay files: JSON lines, one event per line, keys are Falco field names (what `agent --events-out` writes).

A malformed line is reported as one line naming file:line, skipped, and counted; the rest still runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kubeguard.errors import KubeguardError
from kubeguard.model import Event


class ReplayError(KubeguardError):
    """An events file that cannot be opened."""


MAX_LINE_BYTES = 1 << 20


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    malformed: int = 0
    alerts: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


def read_events(path: Path, stats: ReplayStats, on_problem: Callable[[str], None]) -> Iterator[Event]:
    """Events of a replay file; bad lines go to `on_problem` as ``file:line: what`` and are skipped."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot open events file: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                stats.malformed += 1
                on_problem(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes, skipped")
                continue
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                stats.malformed += 1
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                on_problem(f"{path}:{number}: not a JSON event ({reason}), skipped")
                continue
            if not isinstance(data, dict):
                stats.malformed += 1
                on_problem(f"{path}:{number}: expected a JSON object of Falco fields, got {type(data).__name__},"
                           " skipped")
                continue
            if not isinstance(data.get("evt.type"), str):
                stats.malformed += 1
                on_problem(f"{path}:{number}: event has no evt.type string, skipped")
                continue
            stats.events += 1
            yield Event(data)
