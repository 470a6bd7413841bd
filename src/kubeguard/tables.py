"""Plug-in tables: a decorator that files an entry under names, refusing a name filed twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Entry = TypeVar("Entry")


def file_under(table: dict[str, Entry], names: tuple[str, ...], what: str) -> Callable[[Entry], Entry]:
    """Decorator: put the decorated entry in `table` under each of `names` (ValueError on a taken name)."""
    def add(entry: Entry) -> Entry:
        for name in names:
            if name in table:
                raise ValueError(f"{what} for {name!r} registered twice")
            table[name] = entry
        return entry
    return add
