"""The pattern catalogue of the HTTP detectors, compiled once into a hyperscan database.

Each `Signature` is one attack class's regular expression (hyperscan-compatible: no
back-references, no look-around). `Catalogue.scan(value)` runs every signature over a decoded
value in one hyperscan pass (the cheap prefilter benign traffic pays) and returns the classes that
matched; Python's `re` then only runs for those to cut the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hyperscan

from kubeguard.model import Severity

CMD = (
    r"(?:cat|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|dash|ksh|python[23]?|perl|ruby|php|ping|"
    r"nslookup|dig|ls|rm|chmod|chown|echo|printf|sleep|touch|base64|telnet|socat|powershell|cmd|certutil|"
    r"mkfifo|kill|pkill|useradd|crontab|env|tftp|scp|ssh|awk|sed|xargs|find|head|tail|systeminfo|ifconfig|"
    r"ipconfig|netstat|ps|hostname|busybox|nohup|setsid|xmrig|minerd|kubectl|docker|apt-get|yum|apk)"
)
SENSITIVE_FILES = (
    r"(?:etc/(?:passwd|shadow|group|hosts|issue|sudoers|crontab|kubernetes/)|proc/(?:self|\d+)/(?:environ|cmdline|"
    r"maps|fd|root|cwd|mem)|windows/(?:win\.ini|system32)|boot\.ini|\.ssh/|\.aws/credentials|\.kube/config|"
    r"var/run/secrets|var/lib/kubelet|\.env\b|web\.config|wp-config\.php|\.git/|\.htpasswd|\.bash_history|"
    r"root/|id_rsa)"
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
        "HTTP command injection", Severity.CRITICAL, ("T1190", "T1059"),
        rf"(?:[;&|`\n]|\$\()\s*(?:sudo\s+)?(?:/(?:usr/)?s?bin/)?{CMD}(?:\s|$|[;&|`<>)])"
        rf"|^\s*(?:/(?:usr/)?s?bin/)?{CMD}\s+(?:-{{1,2}}\w|/|\S*\s*(?:[|;&>]|https?://)|https?://)"
        r"|/dev/(?:tcp|udp)/|/bin/(?:ba|z|da)?sh\b|\$\{IFS\}|\|\s*(?:ba|z|da)?sh\b|\b0>&1|>&\s*/dev/"
        r"|\bnc(?:at)?\s+(?:-\w+\s+)*-[ec]\s|\bpowershell(?:\.exe)?\s+-(?:enc|e|nop|w|c)\b"
        r"|\(\)\s*\{\s*:?\s*;?\s*\}\s*;",
    ),
    Signature(
        "HTTP XML external entity (XXE)", Severity.HIGH, ("T1190",),
        r"<!ENTITY[^>]{0,400}\b(?:SYSTEM|PUBLIC)\b|<!DOCTYPE[^>]{0,200}\b(?:SYSTEM|PUBLIC)\s*[\"'][a-z]+:"
        r"|<xi:include\b|<!ENTITY\s+%",
    ),
    Signature(
        "HTTP path traversal", Severity.HIGH, ("T1190", "T1083"),
        r"(?:\.\.[/\\]){3,}|(?:\.\.[/\\])+\.?/?" + SENSITIVE_FILES + r"|(?:^|[=/\\])\.\.[/\\].*\x00"
        r"|(?:^|[\s=\"'(])(?:file|php|phar|zip|expect|glob|data:text|netdoc|jar):(?://)?/?(?:/?" + SENSITIVE_FILES
        + r"|filter|input|stdin|\w+/)|^\s*/" + SENSITIVE_FILES + r"|^\s*[a-z]:\\windows\\",
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
)

_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_DOTALL
_MAX_SCAN = 1 << 20  # bytes of one value scanned


class Catalogue:
    """All signatures in one hyperscan database; `scan` returns the indexes that matched."""

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
