"""Secrets shown safely: the one place that knows credential formats, how to mask them, and their entropy.

Every lane that prints or stores something a user or attacker wrote goes through here: posture
(credentials in manifests), attack paths (the cloud key a pod holds), rules (alert output) and
DPI (detection evidence). Masked forms keep only a public marker (``AKIA``) and a length or
the last two characters, never enough to use the secret.
"""

from __future__ import annotations

import math
import re
from collections import Counter

# AWS access key ids: long-term (AKIA), temporary (ASIA), and the bearer/context-key forms (ABIA, ACCA).
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")
HIDDEN = "****"

# name=value / name: value pairs whose name says secret.
_SECRET_PAIRS = re.compile(
    r"(?i)\b((?:(?:aws_)?secret(?:_access)?_key|aws_session_token|client_secret|pass(?:word|wd)?|pwd|secret|"
    r"token|api[_-]?key|access[_-]?key|session(?:id)?|auth|private[_-]?key)[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s&;,\"'}]+)"
)
# Command-line flags followed by their secret: --password X, --token=X.
_SECRET_FLAGS = re.compile(r"(?i)(--(?:password|passwd|token|secret|api-key|aws-secret-access-key))(\s+|=)(\S+)")
# HTTP-style credentials: "Bearer X", "Basic X".
_SCHEME_CREDS = re.compile(r"(?i)\b(bearer|basic|digest|token)\s+([A-Za-z0-9._~+/=-]{4,})")
# user:password@ in a URL.
_URL_CREDS = re.compile(r"(://[^/:@\s]*:)([^/@\s]+)(@)")


def shannon_entropy(text: str) -> float:
    """Bits of entropy per character of `text` (random tokens score 4+, "aaaa" 0)."""
    if not text:
        return 0.0
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def mask(value: str, keep: int = 0) -> str:
    """A whole credential shown safely: `keep` leading characters (a public format marker) and the length."""
    keep = keep if len(value) >= 16 else 0
    return f"{value[:keep]}{'*' * 8}({len(value)} chars)"


def mask_key_id(value: str) -> str:
    """A key id shown so two keys stay apart: its first four and last two characters."""
    return value[:4] + HIDDEN + value[-2:] if len(value) > 8 else HIDDEN


def redact(text: str) -> str:
    """`text` with every credential in it (pairs, flags, bearer/basic, URL passwords, AWS key ids) masked."""
    text = _SECRET_PAIRS.sub(lambda m: m.group(1) + HIDDEN, text)
    text = _SECRET_FLAGS.sub(lambda m: f"{m.group(1)}{m.group(2)}{HIDDEN}", text)
    text = _SCHEME_CREDS.sub(lambda m: f"{m.group(1)} {HIDDEN}", text)
    text = AWS_KEY_ID.sub(lambda m: m.group(0)[:4] + HIDDEN, text)
    return _URL_CREDS.sub(lambda m: m.group(1) + HIDDEN + m.group(3), text)


_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{64,}")


def elide_blobs(text: str) -> str:
    """`text` redacted, with every run of 64+ base64-like characters replaced by its length (an encoded file
    on a command line, e.g. a credentials file written through a shell, shows as ``<120 chars>``)."""
    return redact(_BLOB.sub(lambda m: f"<{len(m.group(0))} chars>", text))

