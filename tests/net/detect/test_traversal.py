"""Path traversal (#12): each family, in every encoding, and the benign near-misses that must pass.

The cases are written here after the families of the public lists (PayloadsAllTheThings Directory
Traversal / File Inclusion, SecLists Fuzzing/LFI, OWASP CRS 930xxx regression tests); the lists
themselves are measured by bench/l7_accuracy.py.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from kubeguard.net.detect.decode import normalize
from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.detect.traversal import GATE, path_traversal, target_weight
from kubeguard.net.types import HttpRequest

TRAVERSAL = "HTTP path traversal"
HEAD = [("Host", "svc"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]

# As sent on the wire (query value of `GET /view?file=`).
ATTACKS = [
    # one and two levels, plain / %-encoded / double-encoded / backslashes / mixed
    "../etc/passwd", "../../etc/shadow", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fboot.ini",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "..%5c..%5cwindows%5cwin.ini", "..\\..\\boot.ini",
    "..\\../..\\../boot.ini", "../config.php", "../../logs/access.log", "..\\web.config", "../.htpasswd",
    "..%2F..%2F..%2F%2F..%2F..%2Fetc/passwd", "../../../img/x.png", "..;/..;/WEB-INF/web.xml",
    # overlong UTF-8 and the invalid spellings masking decoders accept, IIS %u and look-alikes, 0x, nibbles
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "..%c0%af..%c0%afboot.ini", "%e0%80%ae%e0%80%ae\\etc\\passwd",
    "%f0%80%80%ae%f0%80%80%ae%c1%9cetc%c1%9cissue", "%c0%5e%c0%5e/%c0%5e%c0%5e/etc/passwd", "%c0.%c0.%c1%pcboot.ini",
    "%uff0e%uff0e%u2215%uff0e%uff0e%u2215boot.ini", "..%u2216..%u2216windows%u2216win.ini",
    "0x2e0x2e0x2f0x2e0x2e0x2fetc/passwd", "%%32%%65%%32%%65%%32%%66etc%%32%%66passwd", "..%01%u2216..%01%u2216boot.ini",
    ".%00.%c1%25pc.%00.%c1%25pcetc%c1%25pcpasswd", "..\ufffd\ufffd..\ufffd\ufffdboot.ini", "%2%e%2%e%2%fetc%2%fpasswd",
    ".?%uEFC8.?%uEFC8boot.ini", "../../{FILE}", "..2f..2fetc2fpasswd%00", "/etc/pureftpd.passwd%00",
    "....//....//etc/passwd", "....\\/....\\/etc/passwd", "/.../.../.../.../", ".\\\\./.\\\\./etc/passwd",
    # ./ padding and sensitive files named directly
    "./././etc/passwd", "/./././././boot.ini", ".htaccess", "web.config", "/etc/passwd", "/etc/shadow", "boot.ini",
    "C:\\windows\\win.ini", "/proc/self/environ", "WEB-INF/web.xml", "etc%2fpasswd",
    "/var/run/secrets/kubernetes.io/serviceaccount/token", "/etc/hosts", "/root/.ssh/id_rsa",
    # absolute Windows paths, device paths, UNC
    "C:\\boot.ini", "c:/windows/system32/drivers/etc/hosts", "C:/inetpub/wwwroot/global.asa", "c:\\",
    "c:WINDOWS/system32/", "/C:\\Program Files\\", "\\\\?\\C:\\Windows\\win.ini", "\\\\localhost\\c$\\windows\\win.ini",
    "\\\\127.0.0.1\\share\\x", "d:\\System32\\Inetsrv\\metabase.xml", "C:/sysprep.inf",
    # null bytes cutting an extension
    "..%2fboot.ini%00index.html", ".%00.%5c.%00.%5cetc%5cpasswd",
    "shell.php%00.jpg", "../../etc/passwd%00", "/etc/passwd%00.html", "%00../../../etc/passwd", "config.inc.php%00",
    # wrappers
    'SYSTEM "file:///etc/shadow" x y', "php://filter/convert.base64-encode/resource=index", "file:///etc/passwd",
    "expect://id", "phar://up.jpg/x",
]
NEAR_MISSES = [
    "../css/site.css", "../../img/logo.png", "../index.html", "see ../README.md", "..", "...", "../config.json",
    "wait... what?", "v1.2.3..v1.3.0", "1..10", "Cost: $5..$10", "12/05/2026", "2026/12/05", "a..b",
    "https://example.com/a/b/../c", "a/b/c/../d", "images/../x.png", "//cdn.example.com/lib.js",
    "C:\\Users\\bob\\Documents\\report.docx", "C:/Projects/site/index.html", "D:\\Music\\song.mp3",
    "\\\\fileserver\\projects\\q3.xlsx", "file:///C:/Users/me/doc.pdf", "data:image/png;base64,iVBORw0KGgo=",
    "Windows NT 10.0; Win64; x64", "Open the Windows folder", "my passwd is hunter2", "etc/ and so on",
    "the /etc/passwd file lists users", "ec2 key pair id_rsa", "id_rsa", "./report.pdf", "photos/window.jpg",
    "src/app/main.py", "/home/alice/projects/report.pdf",
    "docs/web.config.transform", "how to edit .htaccess rewrite rules", "/usr/share/doc/readme.txt",
    "../lib/utils.py", "../../about", "C:\\files\\group\\a.docx", "..\\docs\\a.txt", "../.gitignore", "file.tar.gz",
    "zip:94107", "/api/v1/users/42",
]


def get(value: str) -> HttpRequest:
    return HttpRequest("GET", "/view?file=" + value.replace(" ", "%20"), headers=HEAD)


def flagged(req: HttpRequest) -> bool:
    return any(d.rule == TRAVERSAL for d in inspect_http_request(req))


@pytest.mark.parametrize("payload", ATTACKS)
def test_traversal_payloads_detected(payload: str) -> None:
    assert flagged(get(payload))
    assert flagged(get(quote(payload, safe="")))  # one more layer of URL encoding


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_pass(text: str) -> None:
    assert not flagged(get(quote(text, safe="")))
    assert path_traversal(text) is None


def test_uri_path_climb_above_root_only() -> None:
    assert flagged(HttpRequest("GET", "/static/%2e%2e/%2e%2e/app/settings", headers=HEAD))
    assert flagged(HttpRequest("GET", "/..;/manager/html", headers=HEAD))
    assert not flagged(HttpRequest("GET", "/static/img/../css/site.css", headers=HEAD))


def test_drive_path_joined_to_the_request_path() -> None:
    assert flagged(HttpRequest("GET", "/download/C:/mysql/my.ini", headers=HEAD))
    assert flagged(HttpRequest("GET", "/files/c:\\windows\\win.ini", headers=HEAD))
    assert not flagged(HttpRequest("GET", "/files/x/C:/notes/todo.txt", headers=HEAD))
    assert not flagged(HttpRequest("GET", "/wiki/a:/b", headers=HEAD))


def test_in_json_body_and_filename() -> None:
    body = b'{"doc": {"path": "..\\\\..\\\\windows\\\\win.ini"}, "html": "<img src=\\"../img/a.png\\">"}'
    req = HttpRequest("POST", "/api", headers=[*HEAD, ("Content-Type", "application/json")], body=body,
                      content_length=[str(len(body))])
    found = [d for d in inspect_http_request(req) if d.rule == TRAVERSAL]
    assert found and "$.doc.path" in found[0].evidence and "win.ini" in found[0].evidence


def test_target_weights() -> None:
    assert target_weight(["etc", "passwd"])[0] == 3
    assert target_weight(["proc", "1234", "environ"])[0] == 3
    assert target_weight(["config.php"])[0] == 3
    assert target_weight(["admin", "index.php"])[0] == 2
    assert target_weight(["about"])[0] == 1
    assert target_weight(["css", "a.css"])[0] == 0


def test_every_verdict_is_gated() -> None:
    """Whatever the tokenizer flags, the hyperscan gate (and so the request prefilter) marks: decoded payloads,
    their raw spellings, and mutations (case, extra separators, embedding in text)."""
    gate = re.compile(GATE, re.I | re.S | re.M)
    texts = []
    for payload in ATTACKS + NEAR_MISSES:
        for variant in (payload, payload.upper(), payload.replace("/", "//"), f"see {payload} now", payload + "\x00"):
            texts += [variant, normalize(variant)]
    for text in texts:
        if path_traversal(text) is not None:
            assert gate.search(text), text

