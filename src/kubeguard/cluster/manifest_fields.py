"""Type-safe reads of Kubernetes object fields: a broken or hostile manifest may hold any type anywhere."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list field, skipping anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def strings(value: Any) -> list[str]:
    """The scalar items of a list field as strings (nested lists and mappings skipped)."""
    return [str(v) for v in value if isinstance(v, str | int | float)] if isinstance(value, list) else []
