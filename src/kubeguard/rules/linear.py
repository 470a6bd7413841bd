"""Regular expressions matched in linear time: rule `regex`, `glob`, `iglob` and `pmatch` patterns.

Python's `re` backtracks: `(a+)+$` on 28 characters takes seconds, a glob with 30 stars minutes. Rule
patterns are untrusted input evaluated per event, so they are compiled with Hyperscan (the Vectorscan
build the hyperscan wheel bundles), an automaton matcher whose time is linear in the input for every
pattern it accepts. What it cannot bound (back-references, lookahead/lookbehind, atomic groups,
possessive quantifiers, conditionals) it refuses at compile time: `LinearPattern` raises ValueError
and the rule compiler turns that into a `file:line` error at load.

Semantics are RE2-class (Falco's own regex engine is RE2): Python/PCRE syntax, full-string matches,
`.` matches any character including a newline, UTF-8 code points; `\\w`/`\\d`/`\\s` are ASCII classes.
Each thread scans with its own Hyperscan scratch space, so a LinearPattern may be shared by threads.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import hyperscan

_FLAGS = (hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY | hyperscan.HS_FLAG_UTF8
          | hyperscan.HS_FLAG_DOTALL)


class LinearPattern:
    """A pattern with the `fullmatch` of `re.Pattern` (True or None), matched in linear time."""

    __slots__ = ("_db", "_local", "nocase", "pattern")

    def __init__(self, pattern: str, nocase: bool = False) -> None:
        self.pattern = pattern
        self.nocase = nocase
        flags = _FLAGS | (hyperscan.HS_FLAG_CASELESS if nocase else 0)
        try:
            source = f"^(?:{pattern})\\z".encode()
        except UnicodeEncodeError as exc:
            raise ValueError("pattern is not valid Unicode text") from exc
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            db.compile(expressions=[source], ids=[0], elements=1, flags=[flags])
        except hyperscan.error as exc:
            message = str(exc.args[0] if exc.args else exc).rstrip(".")
            if "unsupported" in message.lower() or "not supported" in message.lower():
                message += " (patterns are matched in linear time: no back-references, lookaround or atomic groups)"
            raise ValueError(message) from exc
        self._db = db
        self._local = threading.local()  # per-thread scratch space

    def fullmatch(self, text: str) -> bool | None:
        """True when the whole text matches, else None (like `re.Pattern.fullmatch`'s truthiness)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        hits: list[int] = []  # one entry at most: the expression is compiled with SINGLEMATCH
        self._db.scan(text.encode("utf-8", "replace"), match_event_handler=_record, context=hits, scratch=scratch)
        return True if hits else None

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r}{', nocase=True' if self.nocase else ''})"


def _record(_id: int, _start: int, _end: int, _flags: int, hits: object) -> None:
    assert isinstance(hits, list)
    hits.append(1)


@lru_cache(maxsize=4096)
def linear_pattern(pattern: str, nocase: bool = False) -> LinearPattern:
    """A cached LinearPattern (ValueError when the pattern is invalid or cannot be matched in linear time)."""
    return LinearPattern(pattern, nocase)
