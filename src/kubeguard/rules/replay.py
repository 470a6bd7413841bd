"""Replay files: JSON lines, one event per line, keys are Falco field names (what `agent --events-out` writes).

A malformed line (not JSON, nested too deep, not an object, no `evt.type`, an `evt.time` that is not
a time, longer than MAX_LINE_BYTES) is reported as one line naming file:line, skipped, and counted;
the rest still runs. Lines are read in bounded memory (`kubeguard.boundedread`).

Each event carries its identity in the file (`ReplayEvent.identity`: line number and a digest of the
line's bytes), from which `kubeguard replay` derives stable alert ids: replaying the same file again
yields the same ids, so the store keeps each alert once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kubeguard.boundedread import bounded_lines
from kubeguard.errors import KubeguardError
from kubeguard.model import Event

MAX_LINE_BYTES = 1 << 20
MAX_TIME_NS = 253402300799 * 1_000_000_000  # 9999-12-31T23:59:59Z


class ReplayError(KubeguardError):
    """An events file that cannot be opened."""


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    malformed: int = 0
    alerts: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """One event of a replay file and where it was: ``file:line`` and a stable identity."""

    event: Event
    where: str
    identity: str  # "<line>:<sha256 of the line's bytes, 32 hex>"


def read_events(path: Path, stats: ReplayStats, on_problem: Callable[[str], None]) -> Iterator[Event]:
    """Events of a replay file; bad lines go to `on_problem` as ``file:line: what`` and are skipped."""
    for record in read_replay(path, stats, on_problem):
        yield record.event


def read_replay(path: Path, stats: ReplayStats, on_problem: Callable[[str], None]) -> Iterator[ReplayEvent]:
    """`read_events` with each event's place and identity (for stable alert ids)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot open events file: {exc.strerror or exc}") from exc
    with handle:
        for number, _offset, raw in bounded_lines(handle, MAX_LINE_BYTES, str(path)):
            if raw is None:
                stats.malformed += 1
                on_problem(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes, skipped")
                continue
            if not raw.strip():
                continue
            problem, data = _parse(raw)
            if problem:
                stats.malformed += 1
                on_problem(f"{path}:{number}: {problem}, skipped")
                continue
            stats.events += 1
            digest = hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()[:32]
            yield ReplayEvent(Event(data), f"{path}:{number}", f"{number}:{digest}")


def _parse(raw: bytes) -> tuple[str, dict]:
    """("", event fields) or (what is wrong, {})."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not a JSON event ({exc.msg})", {}
    except UnicodeDecodeError:
        return "not a JSON event (not UTF-8)", {}
    except RecursionError:
        return "not a JSON event (nested too deep)", {}
    if not isinstance(data, dict):
        return f"expected a JSON object of Falco fields, got {type(data).__name__}", {}
    if not isinstance(data.get("evt.type"), str):
        return "event has no evt.type string", {}
    problem = _time_problem(data.get("evt.time"))
    return (problem, {}) if problem else ("", data)


def _time_problem(value: object) -> str:
    """Why `evt.time` (nanoseconds since the epoch) is unusable; "" when absent or fine."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"evt.time is a {type(value).__name__}, not nanoseconds"
    if isinstance(value, float) and not math.isfinite(value):
        return f"evt.time {value} is not a time"
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            return ""  # not a number: the alert is stamped with the replay time, as before
        if len(text) > 20:
            return f"evt.time of {len(text)} digits is out of range"
        value = int(text)
    if not 0 <= value <= MAX_TIME_NS:
        return f"evt.time {float(value):.4g} is out of range (0 .. year 9999 in nanoseconds)"
    return ""
