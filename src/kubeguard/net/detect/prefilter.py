"""Request-level prefilter: clears a plain request without building its values.

`needs_values(req)` is False only when no value `extract.request_values` would find can make the
value checks of `detect.http` flag anything. It is a provable superset filter:

* Anything that makes a value differ from a substring of the request (percent / plus / HTML entity
  / backslash escapes, base64 of any kind, Basic credentials, multipart, XML, a Referer query,
  non-ASCII bytes, invalid JSON) is a trigger: the request takes the full path.
* Otherwise every value is a substring of the uri, a header value or the body, bounded by a
  non-word delimiter. Each value is checked where it stands: the uri path, every header value, and the
  query, cookie and body split on their delimiters as `extract` splits them, each value bounded by
  ``\x01``. One hyperscan database holds the triggers, the signatures and the path and command gates,
  with ``^`` / ``$`` widened to "line edge or delimiter", so whatever matches a value matches it there.
  A separator ``&`` or ``;`` never belongs to a value, so an HTML entity split by one is not decoded
  by `extract` either. The verdicts of header values and paths up to `CACHED_HEADER` characters are
  cached (they repeat: user agents, Accept, health-check paths); a request pays one scan for its
  query and body, one for the SQL gate.
* An upload's name is checked for a PHP script's extension whatever the gates say: a multipart body is a
  trigger, and so is an X-Filename (or X-File-Name, ...) header naming a PHP script.
* SSRF and metadata need a host spelling: ``//``, a metadata name, a wildcard-DNS suffix, or a value
  starting with an address that can equal a metadata IP (``169.`` / ``100.``, any 0-led part, ten
  digits, an IPv6 form) - all triggers.
* SQL injection: the SQL headers get the model's own (cached) decision; the query, cookies and body
  are split on their delimiters (as `extract` does) and the SQL gate runs over the parts.
* Command and code injection run only on values their gates mark. The code gate is a trigger like the
  signatures. The command gate treats ``&``, ``;`` and newlines as shell separators, which are also the
  query, cookie and JSON delimiters: that is why values are split before the scan, and bounded by
  ``\x01`` (a delimiter for the widened anchors, never a shell separator).
"""

from __future__ import annotations

import json
from functools import cache, lru_cache

import hyperscan

from kubeguard.net.detect.code import PHP_SCRIPT_NAME
from kubeguard.net.detect.extract import MAX_BODY, SQL_HEADERS, UPLOAD_NAME_HEADERS
from kubeguard.net.detect.patterns import (
    GATE_CMD,
    GATE_CODE,
    GATE_JNDI,
    GATE_PARTS,
    GATE_PATH,
    GATE_SQL,
    GATES,
    SIGNATURES,
)
from kubeguard.net.detect.sqli import is_inert, load_model, sqli_score
from kubeguard.net.types import HttpRequest

# Characters that can end or start a value inside a piece (all non-word, so `\b` holds there too).
DELIM = r"[\x00-\x20\x7f?&=;\"'<>\[\]@:,{}()]"
_HOST_START = f"(?:^|{DELIM})"
_EDGE = {"^": _HOST_START, "$": f"(?:$|{DELIM})"}
TRIGGERS = (
    r"%", r"\\", r"\+", r"&#", r"&[a-z]{2,8};", r"base64", r"multipart", r"[\x80-\xff]", GATES[GATE_JNDI],
    *GATE_PARTS[GATE_CODE],
    r"//", r"metadata", r"instance-data", r"nip\.io", r"xip\.io", r"sslip\.io", r"nip\.direct", r"localtest\.me",
    # IPv4 in inet_aton spellings: a first part of 169 / 100 (any 0-led form: octal, 0x, 0o, '_'), or one big part
    _HOST_START + r"(?:169|100|0[0-9a-z_\s]*)\.",
    _HOST_START + r"(?:\d{10}|0[0-9a-z_]{7})",
    _HOST_START + r"[0-9a-f]{0,4}:[0-9a-f]{0,4}:",
)
_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_DOTALL | hyperscan.HS_FLAG_MULTILINE
_FLAGS |= hyperscan.HS_FLAG_SINGLEMATCH


def widen_anchors(pattern: str) -> str:
    """`pattern` with every ``^`` and ``$`` assertion (outside classes and escapes) made "edge or delimiter"."""
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]" or pattern[i - 1] == "["
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
        elif ch in "^$":
            out.append(_EDGE[ch])
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _compile(patterns: list[str]) -> hyperscan.Database:
    db = hyperscan.Database()
    db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
               elements=len(patterns), flags=[_FLAGS] * len(patterns))
    return db


@cache
def _databases() -> tuple[hyperscan.Database, hyperscan.Database]:
    """(one database for every value: triggers, signatures, path and command gates; the SQL gate over split
    parts), compiled once per process."""
    widened = [*(widen_anchors(s.pattern) for s in SIGNATURES),
               *(widen_anchors(p) for p in (*GATE_PARTS[GATE_PATH], *GATE_PARTS[GATE_CMD]))]
    return _compile([*(widen_anchors(t) for t in TRIGGERS), *widened]), _compile([GATES[GATE_SQL]])


def _stop(_id: int, _from: int, _to: int, _flags: int, _ctx: object) -> bool:
    return True  # the first trigger decides: stop scanning


def _hits(db: hyperscan.Database, data: bytes) -> bool:
    try:
        db.scan(data, match_event_handler=_stop)
    except hyperscan.ScanTerminated:
        return True
    return False


def _split(text: str, sep: str, edge: str = "\n") -> str:
    """``a=1&b=2`` as ``a / 1 / b / 2``: every `sep` and the first '=' of each pair become `edge`, as
    `extract` splits them (a value keeps any further '=' and any newline of its own)."""
    return edge.join(part.replace("=", edge, 1) for part in text.split(sep))


def _body_parts(req: HttpRequest, ctype: str, edge: str = "\n") -> str | None:
    """The body as values bounded by `edge`, or None when only the full path may read it."""
    if not req.body:
        return ""
    if len(req.body) > MAX_BODY:
        return None  # `extract` reads a prefix, which may not parse as the whole does
    text = req.body.decode("latin-1")
    stripped = text.lstrip()
    if "json" in ctype or (not ctype and stripped[:1] in "{["):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return None
        return text.replace('"', edge)  # no backslash: every quote is a string edge
    if "xml" in ctype or stripped.startswith("<"):
        return None
    if "x-www-form-urlencoded" in ctype or (not ctype and "=" in text and "\n" not in text.strip()):
        return _split(text, "&", edge)
    return text


@lru_cache(maxsize=4096)  # user agents and proxies repeat
def _sql_flagged(value: str) -> bool:
    """The SQL model's own decision on a whole header value (as `detect.http` would score it, gate aside)."""
    text = value.strip()
    return bool(text) and not is_inert(text) and sqli_score(text, decoded=True) >= load_model()[1]


CACHED_HEADER = 1024  # header values up to this length keep their verdict (user agents, Accept, cookies repeat)


@lru_cache(maxsize=8192)
def _header_verdict(name: str, value: str) -> bool:
    """True when this header alone sends its request down the full path (cached for values up to
    `CACHED_HEADER` characters)."""
    lname = name.lower()
    if lname in ("authorization", "proxy-authorization") or (lname == "referer" and "?" in value):
        return True
    if lname in UPLOAD_NAME_HEADERS and PHP_SCRIPT_NAME.search(value):
        return True  # an uploaded PHP script's name (`detect.http` checks upload names whatever the gates say)
    any_value, sql_gate = _databases()
    if lname == "cookie":
        return (_hits(any_value, _split(value, ";", "\x01").encode("latin-1", "replace"))
                or _hits(sql_gate, _split(value, ";").encode("latin-1", "replace")))
    if lname in SQL_HEADERS and _sql_flagged(value):
        return True
    return _hits(any_value, value.encode("latin-1", "replace"))


@lru_cache(maxsize=8192)
def _path_verdict(path: str) -> bool:
    """True when the uri path alone sends its request down the full path (paths repeat like header values)."""
    return _hits(_databases()[0], path.encode("latin-1", "replace"))


def needs_values(req: HttpRequest) -> bool:
    """False only when no value of `req` can be flagged by the value checks (see module docstring)."""
    ctype: str | None = None
    for name, value in req.headers:
        if _header_verdict(name, value) if len(value) <= CACHED_HEADER else _header_verdict.__wrapped__(name, value):
            return True
        if ctype is None and len(name) == 12 and name.lower() == "content-type":  # the first one, as `extract` reads
            ctype = value.lower().split(";", 1)[0].strip()
    body_values = _body_parts(req, ctype or "", "\x01")  # parsed once: a JSON body may be large
    if body_values is None:
        return True
    path, question, query = req.uri.partition("?")
    if _path_verdict(path) if len(path) <= CACHED_HEADER else _path_verdict.__wrapped__(path):
        return True
    any_value, sql_gate = _databases()
    rest = f"{_split(query, '&', chr(1))}\x01{body_values}" if question else body_values
    if rest and _hits(any_value, rest.encode("latin-1", "replace")):
        return True
    sql_parts = [_split(query, "&")] if question else []
    if body_values:
        sql_parts.append(body_values.replace("\x01", "\n") if b"\x01" not in req.body
                         else _body_parts(req, ctype or "") or "")
    return bool(sql_parts) and _hits(sql_gate, "\n".join(sql_parts).encode("latin-1", "replace"))
