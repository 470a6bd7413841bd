"""Decoders that undo the encodings attackers layer on a value, with bounded work.

`normalize(value)` peels URL encoding (repeatedly: double and triple encoding), IIS ``%uXXXX``,
HTML entities and backslash-hex escapes until nothing changes, at most `MAX_ROUNDS` times and on
at most `MAX_INPUT` characters, so a hostile value can never make a decode loop run long.
`b64_decode` decodes declared base64 (a part with ``Content-Transfer-Encoding: base64``, a
``data:...;base64,`` URI, an ``Authorization: Basic`` header) when the result is text.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from urllib.parse import unquote, unquote_plus

MAX_INPUT = 65536  # characters of one value decoded; the rest is inspected raw
MAX_ROUNDS = 4  # URL / entity decoding passes (triple encoding and a little more)

_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
# Overlong UTF-8 spellings of '.', '/', '\\' and ' ' that old servers decoded (the IIS / Tomcat traversal trick):
# 2- to 6-byte forms, and the invalid ones decoders that mask bits accepted (`%c0%5e`, `%c1%pc`, `%bg%qf`).
_OVERLONG = re.compile(
    r"%(?:c0%(?:[256aef]e|[2aq]f|5c|9v|\.|a0)|c1%(?:[19p]c|8s|af)|bg%qf"
    r"|(?:e0|f0%80|f8%80%80|fc%80%80%80)%80%a[ef]|(?:e0|f0%80|f8%80%80|fc%80%80%80)%81%9c)", re.I)
_OVERLONG_LEAD = re.compile(r"%[bcef][0-9a-g]", re.I)
_OVERLONG_CHAR = {"e": ".", ".": ".", "f": "/", "v": "/", "s": "/", "c": "\\", "0": " "}
# IIS "double nibble" escapes: `%%32%%65` is '%' + '2' + 'e', i.e. '.'.
_NIBBLE = re.compile(r"%%(3[0-9]|[46][1-6])%%(3[0-9]|[46][1-6])")
# ... and what is left of them after one URL decoding: `%2%e`, `%2%f`, `%5%c`.
_HALF_NIBBLE = re.compile(r"%(?:2%[ef]|5%c)", re.I)
_PCT_U = re.compile(r"%[uU]([0-9A-Fa-f]{4})")
_ENTITY = re.compile(r"&(#[0-9]{1,7};?|#[xX][0-9A-Fa-f]{1,6};?|[A-Za-z]{2,8};)")
_BSLASH_HEX = re.compile(r"\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})")
_B64 = re.compile(rb"^[A-Za-z0-9+/=\s_-]{8,}$")


def _overlong(match: re.Match[str]) -> str:
    text = match.group(0).lower()
    return "\\" if text.endswith(("5c", "9c", "1c", "pc")) else _OVERLONG_CHAR[text[-1]]


def _bslash(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def decode_once(value: str, plus: bool = False) -> str:
    """One pass over every encoding layer we know; returns the value unchanged when none applies."""
    out = value
    if "%" in out:
        if "%%" in out:
            out = _NIBBLE.sub(lambda m: chr(int(chr(int(m.group(1), 16)) + chr(int(m.group(2), 16)), 16)), out)
        if _HALF_NIBBLE.search(out):
            out = _HALF_NIBBLE.sub(lambda m: chr(int(m.group(0).replace("%", ""), 16)), out)
        if "%25" in out and _OVERLONG.search(out.replace("%25", "%")):
            out = out.replace("%25", "%")  # `%c1%25pc`: an overlong spelling with its '%' encoded again
        if _OVERLONG_LEAD.search(out):
            out = _OVERLONG.sub(_overlong, out)
        out = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), out)
        if _PCT.search(out):
            out = unquote_plus(out, errors="replace") if plus else unquote(out, errors="replace")
    if "&" in out and _ENTITY.search(out):
        out = html.unescape(out)
    if "\\" in out and _BSLASH_HEX.search(out):
        out = _BSLASH_HEX.sub(_bslash, out)
    return out


def normalize(value: str, plus: bool = False) -> str:
    """`value` with every encoding layer peeled off (bounded); `plus` turns '+' into space first."""
    if plus and "+" in value:
        value = value.replace("+", " ")
    if "%" not in value and "&" not in value and "\\" not in value:
        return value  # nothing encoded: the common case costs three substring checks
    head, tail = value[:MAX_INPUT], value[MAX_INPUT:]
    cur = head
    for _ in range(MAX_ROUNDS):
        nxt = decode_once(cur)
        if nxt == cur:
            break
        cur = nxt
    return cur + tail


def b64_decode(data: str | bytes) -> str | None:
    """Declared base64 decoded to text, or None when it is not base64 of (mostly) printable text."""
    raw = data.encode("latin-1", "replace") if isinstance(data, str) else data
    raw = raw.strip()[: MAX_INPUT * 2]
    if not _B64.match(raw):
        return None
    raw = b"".join(raw.split())
    try:
        if b"-" in raw or b"_" in raw:
            out = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        else:
            out = base64.b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None
    text = out.decode("utf-8", "replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= 0.9 * len(text) else None
