"""Fuzzing the decoders, tokenizer and detectors: garbage, deep nesting, huge inputs never crash or hang.

Hypothesis' deadline bounds the time of each example; the pathological cases below are the known
worst shapes (decode bombs, nesting, quotes that never close, lookups nested past the cap).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeguard.net.detect.decode import MAX_ROUNDS, b64_decode, normalize
from kubeguard.net.detect.dns import DnsTunnelDetector, tunnel_score
from kubeguard.net.detect.http import catalogue, inspect_http_request
from kubeguard.net.detect.jndi import deobfuscate, jndi_lookup
from kubeguard.net.detect.prefilter import needs_values
from kubeguard.net.detect.sql import inspect_sql_query
from kubeguard.net.detect.sqli import sqli_score
from kubeguard.net.detect.sqltok import MAX_TOKENS, tokenize
from kubeguard.net.detect.ssrf import metadata_target
from kubeguard.net.types import DnsQuestion, HttpRequest

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
nasty = st.text(alphabet=st.sampled_from(list("%25u0027&#x;${}:-jndi'\"/*!-#()<>=\\.ab1 \x00\u2028")), max_size=400)
anytext = st.one_of(st.text(max_size=400), nasty)


@pytest.fixture(scope="module", autouse=True)
def compiled_databases() -> None:
    """Compile the hyperscan databases once before the deadline counts: a one-off per process, several
    seconds on a loaded CI machine, not the per-request work the deadline bounds."""
    catalogue()
    needs_values(HttpRequest("GET", "/", headers=[("Host", "h")]))


@FUZZ
@given(anytext)
def test_value_layer_never_crashes(text: str) -> None:
    normalize(text, plus=True)
    b64_decode(text)
    assert len(tokenize(text, "'")) <= MAX_TOKENS
    assert 0.0 <= sqli_score(text) <= 1.0
    deobfuscate(text)
    jndi_lookup(text)
    metadata_target(text)
    inspect_sql_query(text)
    tunnel_score(text)


headers = st.lists(st.tuples(st.sampled_from(["Host", "Cookie", "Content-Type", "User-Agent", "Referer",
                                              "Authorization", "X-Custom"]), anytext), max_size=8)
ctypes = st.sampled_from(["application/json", "text/xml", "multipart/form-data; boundary=b",
                          "application/x-www-form-urlencoded", ""])


@FUZZ
@given(method=st.text(max_size=10), uri=anytext, hdrs=headers, ctype=ctypes, body=st.binary(max_size=2000),
       cl=st.lists(st.text(max_size=25), max_size=3), te=st.lists(st.text(max_size=25), max_size=3))
def test_http_inspection_never_crashes(method, uri, hdrs, ctype, body, cl, te) -> None:  # type: ignore[no-untyped-def]
    req = HttpRequest(method, uri, headers=[*hdrs, ("Content-Type", ctype)], body=body, content_length=cl,
                      transfer_encoding=te)
    for det in inspect_http_request(req):
        assert det.rule and det.mitre and len(det.evidence) < 400


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=300), st.sampled_from(["A", "TXT", "NULL", "AXFR", "99", ""])),
                max_size=50))
def test_dns_detector_never_crashes(questions: list[tuple[str, str]]) -> None:
    det = DnsTunnelDetector()
    for i, (name, qtype) in enumerate(questions):
        det.observe("10.0.0.1", DnsQuestion(name, qtype), float(i))


def test_pathological_inputs_are_bounded() -> None:
    deep_json = ("[" * 100_000 + "]" * 100_000).encode()
    deep_xml = ("<a>" * 50_000 + "x" + "</a>" * 50_000).encode()
    huge_header = "A" * 1_000_000
    bomb = "%25" * 10 + "27"
    nested_lookup = "${" * 5000 + "jndi:ldap://x/a" + "}" * 5000
    reqs = [
        HttpRequest("POST", "/", headers=[("Content-Type", "application/json")], body=deep_json),
        HttpRequest("POST", "/", headers=[("Content-Type", "application/xml")], body=deep_xml),
        HttpRequest("GET", "/", headers=[("User-Agent", huge_header), ("Cookie", "a=" + "'" * 100_000)]),
        HttpRequest("GET", "/?q=" + bomb + "&n=" + nested_lookup),
        HttpRequest("POST", "/", headers=[("Content-Type", "multipart/form-data; boundary=x")],
                    body=b"--x\r\n" * 100_000),
    ]
    for req in reqs:
        inspect_http_request(req)
    # the decode loop stops after MAX_ROUNDS layers: deeper encoding stays partly encoded
    assert normalize(bomb).count("%") >= 10 - MAX_ROUNDS


def _reference_string_end(s: str, j: int, quote: str) -> int:
    """The tokenizer's string scan one character at a time (as it was written first)."""
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == quote:
            if j + 1 < len(s) and s[j + 1] == quote:
                j += 2
                continue
            return j
        j += 1
    return j


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("'\"\\ab ")), max_size=60), st.sampled_from(["'", '"']))
def test_string_scan_matches_the_character_loop(text: str, quote: str) -> None:
    from kubeguard.net.detect.sqltok import _string_end

    end, reference = _string_end(text, 0, quote), _reference_string_end(text, 0, quote)
    assert end == reference or (end >= len(text) and reference >= len(text))


@pytest.mark.parametrize(("text", "tokens"), [
    ("'a\\'b' x", [("s", "a\\'b"), ("b", "x")]),    # a backslash escapes the quote
    ("'it''s' y", [("s", "it''s"), ("b", "y")]),    # a doubled quote is one quote
    ("x = 'a\\\\' or 1", [("b", "x"), ("=", "="), ("s", "a\\\\"), ("&", "or"), ("n", "1")]),
    ("'\\'", [("S", "\\'")]),                       # the only quote escaped: the string stays open
    ("a <=> b <> c", [("b", "a"), ("=", "<=>"), ("b", "b"), ("=", "<>"), ("b", "c")]),
])
def test_tokenize_strings_and_operators(text: str, tokens: list[tuple[str, str]]) -> None:
    assert tokenize(text) == tokens
