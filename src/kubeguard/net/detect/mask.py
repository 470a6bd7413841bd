"""Mask secrets in detection evidence: credentials never leave the detector in clear text."""

from __future__ import annotations

import re

MAX_EVIDENCE = 160  # characters of evidence kept per detection
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                            "x-auth-token", "x-amz-security-token"})

_SECRET_PAIRS = re.compile(
    r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|session(?:id)?|auth|"
    r"aws_secret_access_key|aws_session_token|client_secret|private[_-]?key)[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s&;,\"'}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|digest|token)\s+([A-Za-z0-9._~+/=-]{4,})")
_AWS_KEY = re.compile(r"\b((?:AKIA|ASIA)[A-Z0-9]{4})[A-Z0-9]{12}\b")
_URL_CREDS = re.compile(r"(://[^/:@\s]*:)([^/@\s]+)(@)")


def mask_secrets(text: str) -> str:
    """`text` with passwords, tokens, bearer/basic credentials and AWS key ids masked as ``***``."""
    text = _SECRET_PAIRS.sub(lambda m: m.group(1) + "***", text)
    text = _BEARER.sub(lambda m: m.group(1) + " ***", text)
    text = _AWS_KEY.sub(lambda m: m.group(1) + "************", text)
    return _URL_CREDS.sub(lambda m: m.group(1) + "***" + m.group(3), text)


def snippet(text: str, start: int = 0, end: int | None = None, width: int = MAX_EVIDENCE) -> str:
    """A short, printable, secret-masked excerpt of `text` around ``[start:end]``."""
    end = len(text) if end is None else end
    lo = max(0, start - 20)
    hi = min(len(text), max(end, lo + 40), lo + width)
    part = text[lo:hi]
    part = "".join(ch if ch.isprintable() else "\\x%02x" % (ord(ch) & 0xFF) for ch in part)
    return mask_secrets(("…" if lo else "") + part + ("…" if hi < len(text) else ""))
