"""The pattern catalogue of the HTTP detectors, compiled once into a hyperscan database.

Each `Signature` is one attack class's regular expression (hyperscan-compatible: no
back-references, no look-around). `Catalogue.scan(value)` runs every signature over a decoded
value in one hyperscan pass (the cheap prefilter benign traffic pays) and returns the classes that
matched; Python's `re` then only runs for those to cut the evidence.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

import hyperscan

from kubeguard.model import Severity
from kubeguard.net.detect import code, shell
from kubeguard.net.detect.traversal import GATE as PATH_GATE
from kubeguard.net.detect.traversal import GATE_PARTS as PATH_GATE_PARTS

CMD = (
    r"(?:cat|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|dash|ksh|python[23]?|perl|ruby|php|ping|"
    r"nslookup|dig|ls|rm|chmod|chown|echo|printf|sleep|touch|base64|telnet|socat|powershell|cmd|certutil|"
    r"mkfifo|kill|pkill|useradd|crontab|env|tftp|scp|ssh|awk|sed|xargs|find|head|tail|systeminfo|ifconfig|"
    r"ipconfig|netstat|ps|hostname|busybox|nohup|setsid|xmrig|minerd|kubectl|docker|apt-get|yum|apk)"
)


@dataclass(frozen=True, slots=True)
class Signature:
    """One attack class: stable rule name, severity, ATT&CK ids and the expression that finds it."""

    rule: str
    severity: Severity
    mitre: tuple[str, ...]
    pattern: str


SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "HTTP XML external entity (XXE)", Severity.HIGH, ("T1190",),
        r"<!ENTITY[^>]{0,400}\b(?:SYSTEM|PUBLIC)\b|<!DOCTYPE[^>]{0,200}\b(?:SYSTEM|PUBLIC)\s*[\"'][a-z]+:"
        r"|<xi:include\b|<!ENTITY\s+%",
    ),
    Signature(
        "HTTP Struts OGNL injection", Severity.CRITICAL, ("T1190", "T1059"),
        r"#_memberAccess|DEFAULT_MEMBER_ACCESS|ognl\.OgnlContext|@java\.lang\.(?:Runtime|ProcessBuilder|System)@"
        r"|(?:%|\$)\{[^}]{0,200}(?:#context|#request|#cmd|#application|#session|@java|new\s+java\.)"
        r"|(?:redirect|action|redirectAction):\s*\$\{",
    ),
    Signature(
        "HTTP Spring4Shell class loader manipulation", Severity.CRITICAL, ("T1190",),
        r"class\.module\.classLoader|class\.classLoader|class\[['\"]?module['\"]?\]|"
        r"\.classLoader\.resources\.context|T\(java\.lang\.Runtime\)|spring\.cloud\.function\.routing-expression",
    ),
    # A template engine's statement tag in a value: Jinja / Django / Twig / Liquid's `{% for x in y %}`, ERB / ASP /
    # JSP's `<% x %>` (what CRS flags as "SSTI Attack" at paranoia level 2, 934180), Handlebars / Mustache's
    # sections and partials (`{{#each x}}`, `{{/each}}`, `{{^x}}`, `{{> name}}`). Plain syntax runs no code by
    # itself (`code_injection` judges what is inside), so it is its own rule at medium severity: an alert, below
    # the firewall's default block severity, that an application whose users post templates can leave out.
    Signature(
        "HTTP template syntax", Severity.MEDIUM, ("T1190",),
        r"\{%-?\s*[a-z_][^%{}\n]{0,200}?-?%\}|<%[=-]?\s*[a-z_@][^%<>\n]{0,200}?-?%>"
        r"|\{\{~?[#/^>]\s*[a-z_][\w.-]*(?:\s[^{}\n]{0,200}?)?~?\}\}",
    ),
)

# Gates: cheap marks a value must carry before the slower checks run on it.
GATE_SQL = 1000  # something SQL syntax needs: quotes, brackets, operators, comments, SQL words, hex blobs
GATE_JNDI = 1001  # a Log4j lookup
GATE_HOST = 1002  # something that can name a host: a URL, a bare address, a metadata name
GATE_CMD = 1003  # a command word or evasion at a shell command position (`shell.command_injection` looks further)
GATE_CODE = 1004  # an entry token of PHP / SSI / template / web-shell code (`code.code_injection` looks further)
GATE_PATH = 1005  # something a traversal verdict needs: `..`, a drive, a null byte, a sensitive file's name
GATE_UPLOAD = 1006  # a PHP script's name (`http` checks it when the value names an upload; the prefilter has its own)
GATES = {
    GATE_SQL: r"['\"`;()#=<>|&*@\\]|--|/\*|0x[0-9a-f]{8}|\b(?:and|or|xor|not|union|select|insert|update|delete|"
              r"drop|exec|execute|sleep|benchmark|waitfor|having|order|group|like|rlike|regexp|between|case|when|"
              r"null|procedure|into|from|where|div|mod|is|in|limit|declare|shutdown|call|end|if)\b",
    GATE_JNDI: r"\$\{",
    # a URL, a bare address (IPv4 forms start with a digit, IPv6 ones with hex digits and ':'), a userinfo '@'
    # before an address, a metadata name
    GATE_HOST: r"^[\[\d]|^[0-9a-f]{0,4}:[0-9a-f]{0,4}:|@[\[\d]|//|metadata|\.internal\b|nip\.io|sslip\.io",
    GATE_CMD: shell.GATE,
    GATE_CODE: code.ENTRY_PATTERN,
    GATE_PATH: PATH_GATE,
    GATE_UPLOAD: code.PHP_SCRIPT_NAME.pattern,
}
# The gates as hyperscan compiles them fastest: one expression per alternative (the same id for each).
GATE_PARTS: dict[int, tuple[str, ...]] = {
    **{gate: (pattern,) for gate, pattern in GATES.items()},
    GATE_CMD: shell.GATE_PARTS,
    GATE_CODE: tuple(code.ENTRIES.values()),
    GATE_PATH: PATH_GATE_PARTS,
}
SEPARATOR = "\n\x01\n"  # between values in one joined scan buffer

_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_DOTALL
_MAX_SCAN = 1 << 20  # bytes of one value scanned


class Catalogue:
    """All signatures in one hyperscan database; `scan` returns the indexes that matched.

    A second database holds the signatures and the gates in multiline mode, for one pass over all
    of a request's values joined (`scan_values`): benign requests are cleared by that single call.
    """

    def __init__(self, signatures: tuple[Signature, ...] = SIGNATURES) -> None:
        self.signatures = signatures
        self.regexes = [re.compile(s.pattern, re.I | re.S) for s in signatures]
        self.db = hyperscan.Database()
        self.db.compile(
            expressions=[s.pattern.encode() for s in signatures],
            ids=list(range(len(signatures))),
            elements=len(signatures),
            flags=[_FLAGS] * len(signatures),
        )
        gates = [(gate, part) for gate, parts in GATE_PARTS.items() for part in parts]
        joined = [*(s.pattern for s in signatures), *(part for _, part in gates)]
        self.joined_db = hyperscan.Database()
        self.joined_db.compile(
            expressions=[p.encode() for p in joined],
            ids=[*range(len(signatures)), *(gate for gate, _ in gates)],
            elements=len(joined),
            flags=[hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_DOTALL | hyperscan.HS_FLAG_MULTILINE] * len(joined),
        )

    def scan_values(self, texts: list[str]) -> list[set[int]]:
        """For each text, the signature indexes and gate ids whose pattern ends inside it (one pass).

        A signature hit here is a candidate: confirm it with `scan` on that text alone (a match may
        straddle two joined values).
        """
        if not texts:
            return []
        texts = [t if len(t) <= _MAX_SCAN else t[:_MAX_SCAN] for t in texts]
        joined = SEPARATOR.join(texts)
        data = joined.encode("utf-8", "surrogatepass")
        if len(data) == len(joined):  # ASCII: byte offsets are character offsets
            sizes = [len(t) for t in texts]
        else:
            sizes = [len(t.encode("utf-8", "surrogatepass")) for t in texts]
        starts = [0] * len(texts)
        pos = 0
        for k, size in enumerate(sizes):
            starts[k] = pos
            pos += size + len(SEPARATOR)
        hits: list[set[int]] = [set() for _ in texts]

        def on_match(sig_id: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            hits[bisect_right(starts, to - 1) - 1].add(sig_id)

        self.joined_db.scan(data, match_event_handler=on_match)
        return hits

    def scan(self, value: str) -> list[int]:
        """Indexes of the signatures matching `value` (already decoded)."""
        hits: list[int] = []

        def on_match(sig_id: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
            hits.append(sig_id)

        self.db.scan(value[:_MAX_SCAN].encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        return sorted(set(hits))

    def evidence_span(self, index: int, value: str) -> tuple[int, int]:
        """Where signature `index` matches in `value` (for the evidence excerpt)."""
        match = self.regexes[index].search(value[:_MAX_SCAN])
        return (match.start(), match.end()) if match else (0, min(len(value), 80))
