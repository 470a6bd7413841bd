"""The request prefilter is a superset filter: with it, every request gets exactly the detections
the full value path gives (bench corpus, shared SQLi / benign sets in many request locations, the
detection and evasion test cases)."""

from __future__ import annotations

import json
import random
from urllib.parse import unquote_plus

import pytest
from bench.dpi_corpus import _request
from test_dpi_detect_evasion import HTTP_ATTACKS
from tests.conftest import need_shared_data
from tests.net.detect.test_detect_http import ATTACKS, BENIGN
from tests.net.detect.test_detect_injection import CODE_NEAR_MISSES, CODE_PAYLOADS
from tests.net.detect.test_traversal import ATTACKS as TRAVERSALS
from tests.net.detect.test_traversal import NEAR_MISSES as TRAVERSAL_NEAR_MISSES

from kubeguard.net.detect.decode import normalize
from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.detect.prefilter import needs_values, widen_anchors
from kubeguard.net.proto.http import HttpRequestStream
from kubeguard.net.types import HttpRequest

HEAD = [("Host", "svc.shop.svc.cluster.local"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]


def placements(payload: str) -> list[HttpRequest]:
    """`payload` in every place a value comes from: path, query, cookie, headers, JSON / form / raw bodies."""
    def body(data: str, ctype: str | None) -> HttpRequest:
        raw = data.encode("utf-8", "surrogatepass")
        headers = [*HEAD, *([("Content-Type", ctype)] if ctype else [])]
        return HttpRequest("POST", "/api", headers=headers, body=raw, content_length=[str(len(raw))])

    return [
        HttpRequest("GET", "/a/" + payload.replace(" ", "") + "?x=1", headers=HEAD),
        HttpRequest("GET", "/a?q=" + payload.replace(" ", "").replace("&", ""), headers=HEAD),
        HttpRequest("GET", "/a?" + payload.replace(" ", ""), headers=HEAD),
        HttpRequest("GET", "/", headers=[*HEAD, ("Cookie", f"sid=1; v={payload.replace(';', '')}")]),
        HttpRequest("GET", "/", headers=[("Host", "h"), ("User-Agent", payload)]),
        HttpRequest("GET", "/", headers=[*HEAD, ("X-Forwarded-For", payload)]),
        HttpRequest("GET", "/", headers=[*HEAD, ("X-Api-Version", payload)]),
        body(json.dumps({"note": payload, payload[:30]: 1}), "application/json"),
        body(json.dumps([payload]), None),
        body("a=1&b=" + payload.replace("&", ""), "application/x-www-form-urlencoded"),
        body(payload, "text/plain"),
        body(payload, None),
    ]


def assert_same(reqs: list[HttpRequest]) -> int:
    """Fast and full path agree on every request; returns how many the prefilter cleared."""
    cleared = 0
    for req in reqs:
        fast = inspect_http_request(req)
        full = inspect_http_request(req, prefilter=False)
        assert fast == full, (req, fast, full)
        cleared += not needs_values(req)
    return cleared


def test_widen_anchors_keeps_classes_and_escapes() -> None:
    out = widen_anchors(r"^a[^>]\$b$")
    assert out.startswith("(?:^|") and "[^>]" in out and r"\$b" in out and out.endswith(")")
    assert "^a" not in out


def test_bench_corpus_same_detections_and_mostly_cleared() -> None:
    rng = random.Random(7)
    reqs = []
    for n in range(3000):
        method, uri, body, _ = _request(rng, 0.05)
        headers = [("Host", f"svc-{n % 40}.shop.svc.cluster.local"), ("User-Agent", rng.choice(
            ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"])),
            ("Accept", "*/*"), ("X-Request-Id", f"{rng.getrandbits(64):016x}")]
        if body:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        reqs.append(HttpRequest(method, uri, headers=headers, body=body, content_length=[str(len(body))] * bool(body)))
    cleared = assert_same(reqs)
    assert cleared > len(reqs) * 0.8  # the fast path really is taken for plain traffic


def test_test_cases_and_evasions_same_detections() -> None:
    reqs = [req for _, req in ATTACKS] + list(BENIGN)
    for wire in HTTP_ATTACKS.values():
        stream = HttpRequestStream(reqs.append)
        stream.feed(wire)
        stream.close()
    assert_same(reqs)
    for req in list(reqs):  # the same values without the browser Referer (which forces the full path)
        reqs.append(HttpRequest(req.method, req.uri, req.version, [h for h in req.headers if h[0] != "Referer"],
                                req.body, content_length=req.content_length, transfer_encoding=req.transfer_encoding))
    assert_same(reqs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["benign_dev.json", "sqli_train.json"])
def test_shared_sets_same_detections(name: str) -> None:
    samples = json.loads(need_shared_data("sqli", name).read_text())[:: 1 if name.startswith("benign") else 8]
    reqs = []
    for sample in samples:
        reqs += placements(sample)
        reqs += placements(unquote_plus(sample))
    cleared = assert_same(reqs)
    assert cleared > 0


METADATA_SPELLINGS = ["169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "[::ffff:a9fe:a9fe]",
                      "::ffff:169.254.169.254", "fd00:ec2::254", "169.254.43518", "user@169.254.169.254",
                      "metadata.google.internal", "169.254.169.254.nip.io", "00251.254.169.254", "0x00a9.0xfe.169.254",
                      "100.100.100.200", "0x646464c8", "0o251.254.169.254", "0_251.254.169.254", "0x\ta9.254.169.254",
                      "0xa_9.0xfe.0xa9.0xfe", "0o25_177_524_776", "0x0xa9.254.169.254",
                      " 169.254.170.2:80/v2/credentials", "\x1f169.254.169.254"]


def test_metadata_spellings_same_detections() -> None:
    """Every spelling is flagged as SSRF (so the case really reaches the check), and the prefilter keeps it."""
    for host in METADATA_SPELLINGS:
        reqs = placements(host) + placements(host + "/latest/meta-data/") + placements(f"u@{host}/x?a")
        assert any(d.rule.startswith("HTTP SSRF") for r in reqs for d in inspect_http_request(r, prefilter=False)), host
        flagged = [r for r in reqs if any(d.rule.startswith("HTTP SSRF") for d in inspect_http_request(r))]
        assert flagged and all(needs_values(r) for r in flagged), host
        assert_same(reqs)


def test_traversal_cases_same_detections() -> None:
    """The traversal tokenizer's cases (decoded, so many reach the prefilter unencoded) in every place."""
    reqs = []
    for payload in TRAVERSALS + TRAVERSAL_NEAR_MISSES:
        reqs += placements(normalize(payload).replace("\x00", ""))
        reqs += placements(payload)
    flagged = [r for r in reqs if any(d.rule == "HTTP path traversal"
                                      for d in inspect_http_request(r, prefilter=False))]
    assert len(flagged) > len(TRAVERSALS) * 4  # the cases really reach the check
    assert_same(reqs)


def test_code_injection_cases_same_detections() -> None:
    """The code lexer's cases and near misses (PHP call shapes, Node, templates) in every place."""
    reqs = []
    for payload in [v for vs in CODE_PAYLOADS.values() for v in vs] + CODE_NEAR_MISSES:
        reqs += placements(payload)
    flagged = [r for r in reqs if any(d.rule == "HTTP code injection"
                                      for d in inspect_http_request(r, prefilter=False))]
    assert len(flagged) > len(CODE_PAYLOADS["php"]) * 4  # the cases really reach the check
    assert_same(reqs)


ENCODED_EDGES = [
    "&#x27; or 1=1--", "x&#59;id", "&lt;?php system('id'); ?&gt;", "a&amp;b=1&#x3b;cat /etc/passwd", "&#36;{7*7}",
    "..&#x2f;..&#x2f;etc&#x2f;passwd", "&quot;;id;&quot;", "1&#38;&#38;whoami", "&#123;&#123;config&#125;&#125;",
]


def test_entities_next_to_separators_and_cached_verdicts_same_detections() -> None:
    """HTML entities whose '&' or ';' is also a query / cookie / form separator, each request sent twice
    (the second meets the cached header and path verdicts of the first)."""
    reqs = [req for payload in ENCODED_EDGES for req in placements(payload)]
    reqs += [HttpRequest("GET", "/" + p.replace(" ", "%20"), headers=HEAD) for p in ENCODED_EDGES]
    assert_same(reqs)
    assert_same(reqs)
    assert sum(needs_values(req) for req in reqs) >= len(ENCODED_EDGES)  # the attacks do take the full path
