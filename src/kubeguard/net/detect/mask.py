"""Mask secrets in detection evidence: credentials never leave the detector in clear text."""

from __future__ import annotations

from kubeguard.redact import redact

MAX_EVIDENCE = 160  # characters of evidence kept per detection


def snippet(text: str, start: int = 0, end: int | None = None, width: int = MAX_EVIDENCE) -> str:
    """A short, printable, secret-masked excerpt of `text` around ``[start:end]``."""
    end = len(text) if end is None else end
    lo = max(0, start - 20)
    hi = min(len(text), max(end, lo + 40), lo + width)
    part = text[lo:hi]
    part = "".join(ch if ch.isprintable() else "\\x%02x" % (ord(ch) & 0xFF) for ch in part)
    return redact(("…" if lo else "") + part + ("…" if hi < len(text) else ""))
