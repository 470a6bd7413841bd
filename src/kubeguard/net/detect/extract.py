"""Where attacks hide in an HTTP request: every value, decoded, with the place it came from.

`request_values(req)` yields `Value`s: the path, each query parameter (key and value), cookies,
the headers attackers use, and the body's values by its declared type (form, JSON, XML,
multipart with declared base64 parts, or raw text), and the text a whole-value base64 spells.
Work is bounded: at most `MAX_VALUES` values, `MAX_DEPTH` levels of JSON, `MAX_BODY` bytes of body,
`MAX_PARTS` multipart parts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from kubeguard.net.detect.decode import b64_decode, normalize
from kubeguard.net.types import HttpRequest

MAX_VALUES = 512
MAX_DEPTH = 32
MAX_BODY = 1 << 20
MAX_PARTS = 64

# Headers whose values go to the SQL injection model (others only to the signatures).
SQL_HEADERS = frozenset({"user-agent", "referer", "x-forwarded-for", "x-real-ip", "x-client-ip", "from"})
_XML_TEXT = re.compile(
    r">([^<>]{1,4096})<|=\s*\"([^\"]{1,4096})\"|=\s*'([^']{1,4096})'|<!\[CDATA\[(.{0,4096}?)\]\]>", re.S
)
_DATA_URI = re.compile(r"data:[\w/+.-]*(?:;[\w=.-]+)*;base64,([A-Za-z0-9+/=]{8,})")
# A whole parameter, cookie or body value that is base64 (16 characters or more, padded to a multiple of 4): an
# application that decodes it (a serialized object, a Node.js payload) runs what it spells, so that text is
# inspected too (header values are not: `application/json` is base64-shaped).
_B64_VALUE = re.compile(r"(?:[A-Za-z0-9+/]{4}){3,}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)")


@dataclass(slots=True)
class Value:
    """One decoded value and where it was: ``query id``, ``header User-Agent``, ``body json $.a``..."""

    where: str
    text: str
    sql: bool = True  # also scored by the SQL injection model
    key: str = ""


def _split_pairs(text: str, sep: str, where: str, plus: bool) -> Iterator[Value]:
    for part in text.split(sep):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key_text = normalize(key.strip(), plus=plus)
        if eq:
            yield Value(f"{where} {key_text[:40]}", normalize(value.strip() if sep == ";" else value, plus=plus),
                        key=key_text)
        yield Value(f"{where} name", key_text, sql=not eq or len(key_text) > 24, key=key_text)


def _json_values(doc: object, where: str) -> Iterator[Value]:
    stack: list[tuple[object, str, int]] = [(doc, "$", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(node, dict):
            for key, val in list(node.items())[:MAX_VALUES]:
                yield Value(f"{where} {path} key", normalize(str(key)), sql=False, key=str(key))
                stack.append((val, f"{path}.{str(key)[:30]}", depth + 1))
        elif isinstance(node, list):
            stack.extend((val, f"{path}[{i}]", depth + 1) for i, val in enumerate(node[:MAX_VALUES]))
        elif isinstance(node, str):
            yield Value(f"{where} {path}", normalize(node), key=path.rsplit(".", 1)[-1])


def _xml_values(text: str, where: str) -> Iterator[Value]:
    yield Value(f"{where} document", text, sql=False)
    for match in _XML_TEXT.finditer(text):
        inner = next(g for g in match.groups() if g is not None).strip()
        if inner:
            yield Value(f"{where} text", normalize(inner))


def _multipart_values(body: bytes, ctype: str, where: str) -> Iterator[Value]:
    boundary = re.search(r'boundary="?([^";,]{1,200})"?', ctype, re.I)
    if not boundary:
        yield Value(f"{where} raw", normalize(body.decode("utf-8", "replace")))
        return
    delim = b"--" + boundary.group(1).encode("latin-1", "replace")
    for part in body.split(delim)[1 : MAX_PARTS + 1]:
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
        headers = head.decode("latin-1", "replace")
        content = content.removesuffix(b"\r\n").removesuffix(b"\n")
        name = re.search(r'\bname="([^"]{0,100})"', headers, re.I)
        filename = re.search(r'\bfilename\*?="?([^";\r\n]{0,255})', headers, re.I)
        label = f"{where} part {name.group(1) if name else '?'}"
        if filename:
            yield Value(f"{label} filename", normalize(filename.group(1)), sql=False)
        text = content.decode("utf-8", "replace")
        if re.search(r"content-transfer-encoding:\s*base64", headers, re.I):
            decoded = b64_decode(content)
            if decoded is not None:
                text, label = decoded, label + " (base64)"
        ptype = re.search(r"content-type:\s*([^\r\n;]+)", headers, re.I)
        yield from _typed_values(text, ptype.group(1).strip().lower() if ptype else "", label)


def _typed_values(text: str, ctype: str, where: str) -> Iterator[Value]:
    stripped = text.lstrip()
    if "json" in ctype or (not ctype and stripped[:1] in "{["):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            yield Value(f"{where} raw", normalize(text))
            return
        yield from _json_values(doc, f"{where} json")
    elif "xml" in ctype or stripped.startswith("<"):
        yield from _xml_values(text, f"{where} xml")
    elif "x-www-form-urlencoded" in ctype or (not ctype and "=" in text and "\n" not in text.strip()):
        yield from _split_pairs(text, "&", f"{where} form", plus=True)
    else:
        yield Value(f"{where} raw", normalize(text))


def body_values(req: HttpRequest) -> Iterator[Value]:
    """The body's values by its declared Content-Type (and declared base64)."""
    if not req.body:
        return
    ctype = (req.header("Content-Type") or "").lower()
    body = req.body[:MAX_BODY]
    if "multipart/" in ctype:
        yield from _multipart_values(body, req.header("Content-Type") or "", "body")
        return
    text = body.decode("utf-8", "replace")
    encoding = (req.header("Content-Transfer-Encoding") or req.header("Content-Encoding") or "").lower()
    if "base64" in encoding:
        decoded = b64_decode(body)
        if decoded is not None:
            text = decoded
    yield from _typed_values(text, ctype.split(";", 1)[0].strip(), "body")


def _b64_text(value: str) -> str | None:
    """The ASCII text a whole-value base64 spells, or None: hex digits, plain words (`computeResources`) and
    binary tokens are not base64 text."""
    if not re.search(r"[0-9+/=]", value) or re.fullmatch(r"[0-9a-fA-F]+", value):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or any((b < 0x20 and b not in (9, 10, 13)) or b > 0x7E for b in raw):
        return None
    return raw.decode("ascii")


# Headers some AJAX uploaders name the uploaded file in (CRS 933110 reads the same).
UPLOAD_NAME_HEADERS = frozenset({"x-filename", "x_filename", "x.filename", "x-file-name"})


def is_upload_name(where: str) -> bool:
    """Whether a value found at `where` (`Value.where`) names an uploaded file."""
    return where.endswith(" filename") or (where.startswith("header ") and where[7:].lower() in UPLOAD_NAME_HEADERS)


def request_values(req: HttpRequest) -> list[Value]:
    """Every value of `req` worth inspecting, decoded, capped at `MAX_VALUES`."""
    out: list[Value] = []
    path, _, query = req.uri.partition("?")
    out.append(Value("uri path", normalize(path), sql=False))
    if query:
        out.extend(_split_pairs(query, "&", "query", plus=True))
    for name, value in req.headers:
        lname = name.lower()
        if lname == "cookie":
            out.extend(_split_pairs(value, ";", "cookie", plus=True))
        elif lname in ("authorization", "proxy-authorization"):
            scheme, _, cred = value.strip().partition(" ")
            if scheme.lower() == "basic":
                user = (b64_decode(cred) or "").split(":", 1)[0]
                out.append(Value(f"header {name} (basic user)", normalize(user)))
        elif lname == "referer":
            out.append(Value(f"header {name}", normalize(value), sql=False))
            if "?" in value:
                out.extend(_split_pairs(value.split("?", 1)[1], "&", "referer query", plus=True))
        else:
            out.append(Value(f"header {name}", normalize(value), sql=lname in SQL_HEADERS))
        if len(out) >= MAX_VALUES:
            break
    for val in body_values(req):
        out.append(val)
        if len(out) >= MAX_VALUES:
            break
    extra: list[Value] = []
    for val in out:
        if (len(val.text) >= 16 and not len(val.text) % 4 and not val.where.startswith("header")
                and _B64_VALUE.fullmatch(val.text)):
            decoded = _b64_text(val.text)
            if decoded is not None:
                extra.append(Value(val.where + " (base64)", normalize(decoded), sql=False))
        if ";base64," not in val.text:
            continue
        for match in _DATA_URI.finditer(val.text[:MAX_BODY]):
            decoded = b64_decode(match.group(1))
            if decoded is not None:
                extra.append(Value(val.where + " (data: base64)", normalize(decoded)))
    if extra:
        out.extend(extra)
    return out[:MAX_VALUES]
