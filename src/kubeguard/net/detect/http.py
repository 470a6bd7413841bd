"""HTTP request inspection: the attack classes of issue 5 over every decoded value of a request.

`inspect_http_request(req)` is what the DPI engine calls once per parsed request. It checks the
framing (request smuggling, bad lengths), then every value `extract.request_values` finds (path,
query, cookies, headers, form/JSON/XML/multipart bodies, declared base64) against the hyperscan
signature catalogue, the shell and code lexers (command and code injection), the Log4Shell
deobfuscator, the cloud-metadata SSRF resolver and the SQL injection model. One `Detection` per rule
and request: the first place it was seen, and how many.
"""

from __future__ import annotations

import re
from functools import cache

from kubeguard.model import Severity
from kubeguard.net.detect.code import PHP_SCRIPT_NAME, code_injection
from kubeguard.net.detect.extract import Value, is_upload_name, request_values
from kubeguard.net.detect.jndi import jndi_lookup
from kubeguard.net.detect.mask import snippet
from kubeguard.net.detect.patterns import (
    GATE_CMD,
    GATE_CODE,
    GATE_HOST,
    GATE_JNDI,
    GATE_PATH,
    GATE_SQL,
    GATE_UPLOAD,
    Catalogue,
)
from kubeguard.net.detect.prefilter import needs_values
from kubeguard.net.detect.shell import command_injection
from kubeguard.net.detect.sqli import is_inert, load_model, sqli_score
from kubeguard.net.detect.ssrf import is_metadata_host, metadata_target
from kubeguard.net.detect.traversal import path_traversal
from kubeguard.net.types import Detection, HttpRequest
from kubeguard.redact import redact

MAX_CONTENT_LENGTH = 1 << 31  # a declared body above 2 GiB is a length attack, not an upload
_CL_VALID = re.compile(r"\d{1,19}")

SQLI = ("HTTP SQL injection", Severity.HIGH, ("T1190",))
CMDI = ("HTTP command injection", Severity.CRITICAL, ("T1190", "T1059"))
CODE = ("HTTP code injection", Severity.CRITICAL, ("T1190", "T1059", "T1505.003"))
LOG4SHELL = ("HTTP Log4Shell JNDI lookup", Severity.CRITICAL, ("T1190", "T1059"))
SSRF = ("HTTP SSRF to cloud metadata", Severity.CRITICAL, ("T1190", "T1552.005"))
METADATA = ("HTTP request to cloud metadata API", Severity.HIGH, ("T1552.005",))
SMUGGLING = ("HTTP request smuggling", Severity.HIGH, ("T1190",))
BAD_LENGTH = ("HTTP invalid content length", Severity.MEDIUM, ("T1190", "T1499"))
TRAVERSAL = ("HTTP path traversal", Severity.HIGH, ("T1190", "T1083"))


@cache
def catalogue() -> Catalogue:
    """The compiled signature database (built once per process)."""
    return Catalogue()


class _Findings:
    """Collects one detection per rule: the first place seen, plus a count of places."""

    def __init__(self, req: HttpRequest) -> None:
        self.req = req
        self.by_rule: dict[str, Detection] = {}

    def add(self, spec: tuple[str, Severity, tuple[str, ...]], where: str, evidence: str, **fields: object) -> None:
        rule, severity, mitre = spec
        found = self.by_rule.get(rule)
        if found is not None:
            found.fields["http.hits"] = int(found.fields.get("http.hits", 1)) + 1  # type: ignore[call-overload]
            return
        self.by_rule[rule] = Detection(
            rule=rule,
            severity=severity,
            evidence=f"{where}: {evidence}",
            mitre=mitre,
            fields={"http.method": self.req.method, "http.uri": redact(self.req.uri[:200]),
                    "http.location": where, **fields},
            tags=("http", "dpi"),
        )


def _plain_framing(req: HttpRequest) -> bool:
    """No Transfer-Encoding and at most one plain length below 1 GB: `_framing` has nothing to say."""
    cls = req.content_length
    return not req.transfer_encoding and (not cls or (
        len(cls) == 1 and cls[0].isascii() and cls[0].isdigit() and len(cls[0]) <= 9))


def _framing(req: HttpRequest, found: _Findings) -> None:
    """Request smuggling (CL/TE conflicts, differing duplicate CL, obfuscated TE) and bad lengths."""
    if _plain_framing(req):
        return
    cls = [v.strip() for v in req.content_length]
    tes = [v.strip().lower() for v in req.transfer_encoding]
    for value in cls:
        if not _CL_VALID.fullmatch(value):
            found.add(BAD_LENGTH, "header Content-Length", f"not a length: {value[:40]!r}")
        elif int(value) > MAX_CONTENT_LENGTH:
            found.add(BAD_LENGTH, "header Content-Length", f"oversized: {value[:20]}")
    if len(set(cls)) > 1:
        found.add(SMUGGLING, "header Content-Length", f"conflicting values {', '.join(c[:20] for c in cls[:4])}")
    if cls and tes:
        found.add(SMUGGLING, "headers", f"both Content-Length {cls[0][:20]} and Transfer-Encoding {tes[0][:40]}")
    codings = [c.strip() for te in tes for c in te.split(",")]
    if tes and (codings[-1:] != ["chunked"] or codings.count("chunked") > 1 or len(tes) > 1):
        found.add(SMUGGLING, "header Transfer-Encoding", f"ambiguous coding {', '.join(tes)[:60]!r}")
    if req.version.startswith("1.0") and tes:
        found.add(SMUGGLING, "header Transfer-Encoding", "chunked coding on an HTTP/1.0 request")


def _inspect_value(val: Value, marks: set[int], found: _Findings, sql_threshold: float) -> None:
    """Confirm the candidates the joined scan marked on one value, and run the gated checks."""
    text = val.text
    where = val.where
    cat = catalogue()
    if min(marks) < GATE_SQL:  # a signature candidate (gates are numbered from GATE_SQL up)
        for index in cat.scan(text):
            sig = cat.signatures[index]
            start, end = cat.evidence_span(index, text)
            found.add((sig.rule, sig.severity, sig.mitre), where, snippet(text, start, end))
    if GATE_PATH in marks:
        path = path_traversal(text, in_uri_path=where == "uri path")
        if path is not None:
            found.add(TRAVERSAL, where, snippet(path))
    if GATE_CMD in marks:
        command = command_injection(text)
        if command:
            found.add(CMDI, where, snippet(command))
    if GATE_UPLOAD in marks and is_upload_name(where) and PHP_SCRIPT_NAME.search(text):
        found.add(CODE, where, f"PHP script uploaded: {snippet(text)}", **{"http.code_family": "php_upload"})
    if GATE_CODE in marks:
        code = code_injection(text)
        if code:
            found.add(CODE, where, snippet(code[1]), **{"http.code_family": code[0]})
    if is_inert(text):
        return
    if GATE_JNDI in marks:
        lookup = jndi_lookup(text)
        if lookup:
            found.add(LOG4SHELL, where, snippet(lookup))
    if GATE_HOST in marks:
        target = metadata_target(text)
        if target:
            found.add(SSRF, where, snippet(text, 0, 80), **{"http.ssrf_target": target})
    if val.sql and GATE_SQL in marks:
        score = sqli_score(text, decoded=True)
        if score >= sql_threshold:
            found.add(SQLI, where, snippet(text), **{"http.sqli_score": round(score, 3)})


def inspect_http_request(req: HttpRequest, prefilter: bool = True) -> list[Detection]:
    """Every attack class found in one request, one Detection per rule (highest severity first).

    With `prefilter` (the default), a request `prefilter.needs_values` clears skips the value
    checks: it provably has nothing they could flag (`tests/dpi/test_dpi_prefilter.py`).
    """
    host = req.header("Host")
    metadata = host is not None and is_metadata_host(host)
    cleared = prefilter and not needs_values(req)
    if cleared and not metadata and _plain_framing(req):
        return []  # nothing for framing, Host or any value check to find
    found = _Findings(req)
    _framing(req, found)
    if metadata:
        found.add(METADATA, "header Host", f"{req.method} {snippet(host or '')}{snippet(req.uri, 0, 60)}")
    if cleared:
        return sorted(found.by_rule.values(), key=lambda d: -d.severity)
    threshold = load_model()[1]
    values = request_values(req)
    for val, marks in zip(values, catalogue().scan_values([v.text for v in values]), strict=True):
        if marks:
            _inspect_value(val, marks, found, threshold)
    return sorted(found.by_rule.values(), key=lambda d: -d.severity)
