"""Small readers for sensor event values (which may be missing, ``<NA>`` or strings)."""

from __future__ import annotations

from typing import Any


def as_int(value: Any) -> int | None:
    """`value` as an int; None when missing, ``<NA>`` or not a number."""
    if type(value) is int:  # what the sensors give (a bool is an int too, but goes through int() below)
        return value
    if value is None or value == "<NA>":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def internal_stripped(event: dict[str, Any]) -> dict[str, Any]:
    """The event without internal keys (those starting with ``_``), as outputs show it."""
    return {k: v for k, v in event.items() if not k.startswith("_")}
