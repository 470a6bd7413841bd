"""Falco output templates: ``Shell in %container.name (cmd=%proc.cmdline)`` -> text plus output_fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubeguard.model import identity_fields
from kubeguard.redact import redact
from kubeguard.rules.falco_fields import FieldRef, UnknownField, field_type, to_str, value_getter

# %field, %field[arg], %(field); Falco also accepts a leading '*' (%*proc.name), which we ignore.
_TOKEN = re.compile(r"%\*?(\()?([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)(\[[^\]]*\])?(?(1)\))")
NA = "<NA>"
class OutputTemplate:
    """A parsed output template: literal parts and field getters, rendered on a match only."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.parts: list[tuple[str, str | None]] = []  # (literal, field text or None)
        self.getters: dict[str, Any] = {}
        self._unknown: list[str] = []  # "field: why" for fields Falco would not know (reported at load)
        pos = 0
        for m in _TOKEN.finditer(template):
            arg = m.group(3)
            ref = FieldRef(m.group(2), arg[1:-1] if arg else None)
            self.parts.append((template[pos:m.start()], ref.text))
            try:
                field_type(ref)
            except UnknownField as exc:
                self._unknown.append(str(exc) if ref.text in str(exc) else f"{ref.text} ({exc})")
            self.getters[ref.text] = (ref, value_getter(ref))
            pos = m.end()
        self.parts.append((template[pos:], None))

    def unknown_fields(self) -> list[str]:
        """The template's fields that do not exist (or have a bad argument), with why."""
        return list(self._unknown)

    def render(self, event: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        values: dict[str, Any] = {}
        for text, (_, get) in self.getters.items():
            try:
                values[text] = get(event)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError):
                values[text] = None
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(_display(values[name]))
        for key, value in values.items():
            if isinstance(value, str):
                values[key] = redact(value)
        for key, value in identity_fields(event).items():
            values.setdefault(key, value)
        return redact("".join(out)), values


def _display(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, list | tuple):
        return ",".join(_display(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return to_str(value) or ""
