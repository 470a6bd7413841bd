"""Bounds on untrusted input files: size, nesting depth, YAML alias expansion and numbers.

Every manifest, dump, kubeconfig, pods file and exceptions file is read through these limits, so a
hostile or broken file gives one clear line instead of a traceback, a hang or gigabytes of memory:

- `read_bounded`: at most `MAX_FILE_BYTES` are ever read (also from /dev/zero, a FIFO or a file
  that grows while it is read);
- `MAX_DEPTH`: documents nested deeper are refused (Kubernetes objects nest a few dozen levels;
  anything near Python's recursion limit would break code that walks the value);
- `MAX_ALIAS_NODES`: YAML aliases may bring in at most this many nodes per document in all (an
  "alias bomb" of nine levels of ten aliases is a billion nodes in 600 bytes);
- `int_in_range`: the one place numbers from manifests (ports, counts) are range-checked; an
  integer literal longer than `MAX_INT_DIGITS` is out of any range Kubernetes accepts (int64).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 200
MAX_ALIAS_NODES = 100_000
MAX_INT_DIGITS = 19  # int64: what the API server accepts for any integer field
_LONG_INT = re.compile(rf"-?\d{{{MAX_INT_DIGITS + 1},}}")


class InputError(ValueError):
    """A file breaks one of the bounds; `line` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, never more than `limit` (raises InputError beyond it, OSError when unreadable)."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"file too large (over {limit // (1024 * 1024)} MiB limit)")
    return data


def too_deep_message(depth: int = MAX_DEPTH) -> str:
    return f"nested deeper than {depth} levels: refused"


def loads_json(text: str) -> tuple[Any, list[InputError]]:
    """Parse untrusted JSON within the bounds; returns the value and the numbers that were out of range.

    An integer literal longer than Python's int-from-string limit (4300 digits) makes the C scanner
    fail, so only then is the text parsed again with integers beyond int64 read as null, each reported
    with its line. (Shorter big integers stay ints: `int_in_range` refuses them where they are used.)
    Raises InputError for a document nested too deeply, json.JSONDecodeError for malformed text.
    """
    problems: list[InputError] = []
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise InputError(too_deep_message()) from exc
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer over sys.get_int_max_str_digits() digits
        try:
            value = json.loads(text, parse_int=_bounded_int)
        except RecursionError as exc:
            raise InputError(too_deep_message()) from exc
        problems = long_int_problems(text)
    if not depth_within(value):
        raise InputError(too_deep_message())
    return value, problems


def _bounded_int(text: str) -> int | None:
    return None if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def long_int_problems(text: str, limit: int = 5) -> list[InputError]:
    """Where `text` holds integer literals beyond int64 (the first `limit`), each as an InputError."""
    found = []
    for match in _LONG_INT.finditer(text):
        start, end = match.span()
        if (start and (text[start - 1].isalnum() or text[start - 1] in "._\"'")) or \
                (end < len(text) and (text[end].isalnum() or text[end] in "._\"'")):
            continue  # part of a word, a string or a float
        found.append(InputError(out_of_range_message(end - start), text.count("\n", 0, start) + 1))
        if len(found) == limit:
            break
    return found


def out_of_range_message(digits: int) -> str:
    return f"integer with {digits} digits is out of range (int64): read as null"


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON value nests at most `limit` levels of objects and arrays."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > limit:
            return False
        depth += 1
        for child in item.values() if type(item) is dict else item if type(item) is list else ():
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth))
    return True


def int_in_range(value: Any, low: int, high: int) -> int | None:
    """`value` as an int when it is one (not a bool) within [low, high]; else None.

    The one range check for numbers read from manifests (ports, counts, ids): a string of digits is
    not a number here, as Kubernetes would reject it in an integer field.
    """
    if type(value) is int and low <= value <= high:
        return value
    return None


def port_number(value: Any) -> int | None:
    """A TCP/UDP port number (1-65535), or None."""
    return int_in_range(value, 1, 65535)
