"""Per-class L7 accuracy: command injection, code injection and path traversal, kubeguard vs CRS PL1/PL2.

Attack lists and benign traffic live in bench/data/l7 (see its SOURCE; built by bench/l7_corpus.py).
How an entry becomes a request (the same bytes go to kubeguard and to libmodsecurity + CRS):

- query:  `GET /search?q=WIRE` (WIRE = the list entry with space, `#`, `&`, `+`, a `%` not starting an
  escape, control and non-ASCII characters percent-encoded; the list's own `%XX` escapes are kept, so the
  server decodes them once, as the list's author meant);
- form:   `POST /comment` with `Content-Type: application/x-www-form-urlencoded` and body `comment=WIRE`;
- json:   `POST /api/v1/notes` with `Content-Type: application/json` and body `{"note": VALUE}`, VALUE being
  WIRE decoded once (what an application reads from a query or form);
- path:   (traversal only) `GET /download/WIRE` with `?` also encoded.

Benign value sources (file paths and names, free text, prose) go through query, form and json the same way,
encoded as a browser does (every reserved character escaped); benign documents keep their shape: JSON API
bodies are POSTed as `application/json`, form posts as `application/x-www-form-urlencoded`, and the shared
benign query strings (../shared/data/sqli, when present) as `GET /?QS`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from bench.l7_corpus import decoded
from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.types import HttpRequest

DATA = Path(__file__).resolve().parent / "data" / "l7"
SHARED_SQLI = Path(os.environ.get("KUBEGUARD_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") \
    / "sqli" / "benign_dev.json"
CLASSES = {"cmdi": "OS command injection", "code": "code injection (PHP, SSI, templates)",
           "traversal": "path traversal"}
GROUPS = ("public", "crs-tests")
SPLITS = ("dev", "heldout")
PLACEMENTS = ("query", "form", "json")
CLASS_PLACEMENTS = {"cmdi": PLACEMENTS, "code": PLACEMENTS, "traversal": (*PLACEMENTS, "path")}
VALUE_SOURCES = ("paths", "filenames", "text", "prose")
DOC_SOURCES = {"json_api": "json-doc", "forms": "form-doc"}
BENIGN_NAMES = {"paths": "file paths (Debian package lists)", "filenames": "file names (Debian package lists)",
                "text": "UI text, 24 languages (gtk/glib/iso-codes/shared-mime-info catalogs)",
                "prose": "README / markdown lines (/usr/share/doc)", "json_api": "JSON API bodies (botocore examples)",
                "forms": "form posts (AWS query-protocol examples)",
                "query_strings": "query strings (../shared/data/sqli benign_dev.json)"}
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
_NEEDS = re.compile(r"[\x00-\x20\x7f-\U0010ffff#&+]|%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Probe:
    """One request of the bench: what it carries (class or benign source), where, and its wire form."""

    kind: str  # attack class, or "benign"
    source: str  # attack group (public / crs-tests) or benign source name
    split: str  # dev / heldout (benign: "all")
    placement: str
    method: str
    uri: str
    content_type: str = ""
    body: str = ""
    entry: str = ""  # the list entry an attack request carries

    def http(self) -> HttpRequest:
        """The request as kubeguard's HTTP parser hands it to the detectors."""
        body = self.body.encode("utf-8")
        headers = [("Host", "shop.example"), ("User-Agent", AGENT), ("Accept", "*/*")]
        if body:
            headers += [("Content-Type", self.content_type), ("Content-Length", str(len(body)))]
        return HttpRequest(self.method, self.uri, headers=headers, body=body,
                           content_length=[str(len(body))] if body else [])

    def peer_json(self) -> str:
        """The same request for bench/crs_peer.py (one JSON line)."""
        return json.dumps({"method": self.method, "uri": self.uri, "host": "shop.example", "agent": AGENT,
                           "body": self.body.encode("utf-8").decode("latin-1"), "content_type": self.content_type})


def wire(entry: str, path: bool = False) -> str:
    """A list entry as it goes on the wire (see the module docstring)."""
    text = _NEEDS.sub(lambda m: quote(m.group(0), safe=""), entry)
    return text.replace("?", "%3F") if path else text


def attack_probes(klass: str, group: str, split: str, entry: str) -> list[Probe]:
    w = wire(entry)
    out = [Probe(klass, group, split, "query", "GET", "/search?q=" + w, entry=entry),
           Probe(klass, group, split, "form", "POST", "/comment", "application/x-www-form-urlencoded",
                 "comment=" + w, entry),
           Probe(klass, group, split, "json", "POST", "/api/v1/notes", "application/json",
                 json.dumps({"note": unquote(w, errors="replace")}, ensure_ascii=False), entry)]
    if "path" in CLASS_PLACEMENTS[klass]:
        out.append(Probe(klass, group, split, "path", "GET", "/download/" + wire(entry, path=True).lstrip("/"),
                         entry=entry))
    return out


def value_probes(source: str, value: str) -> list[Probe]:
    q = quote(value, safe="")
    return [Probe("benign", source, "all", "query", "GET", "/search?q=" + q),
            Probe("benign", source, "all", "form", "POST", "/comment", "application/x-www-form-urlencoded",
                  "comment=" + q),
            Probe("benign", source, "all", "json", "POST", "/api/v1/notes", "application/json",
                  json.dumps({"note": value}, ensure_ascii=False))]


def read_list(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def attack_entries(klass: str, group: str, split: str) -> list[str]:
    return read_list(DATA / "attacks" / f"{klass}.{group}.{split}.txt")


def attack_set() -> list[Probe]:
    return [p for klass in CLASSES for group in GROUPS for split in SPLITS
            for entry in attack_entries(klass, group, split) for p in attack_probes(klass, group, split, entry)]


def benign_set(shared: bool = True) -> list[Probe]:
    probes = [p for source in VALUE_SOURCES for v in read_list(DATA / "benign" / f"{source}.txt")
              for p in value_probes(source, v)]
    for line in read_list(DATA / "benign" / "json_api.txt"):
        probes.append(Probe("benign", "json_api", "all", "json-doc", "POST", "/api/v1/call", "application/json",
                            line))
    for line in read_list(DATA / "benign" / "forms.txt"):
        probes.append(Probe("benign", "forms", "all", "form-doc", "POST", "/", "application/x-www-form-urlencoded",
                            line))
    if shared and SHARED_SQLI.exists():
        probes += [Probe("benign", "query_strings", "all", "query-doc", "GET", "/?" + qs)
                   for qs in json.loads(SHARED_SQLI.read_text())]
    return probes


def kubeguard_flags(probes: list[Probe]) -> tuple[list[bool], Counter[str]]:
    """Whether any kubeguard HTTP rule fired on each probe, and which rules fired how often."""
    flags, rules = [], Counter()
    for p in probes:
        found = inspect_http_request(p.http())
        flags.append(bool(found))
        rules.update(d.rule for d in found)
    return flags, rules


def rate(flags: list[bool], idx: list[int]) -> tuple[int, int]:
    return sum(flags[i] for i in idx), len(idx)


def cell(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f} % ({hits}/{total})" if total else "-"


def class_tables(probes: list[Probe], peers: dict[str, list[bool]]) -> str:
    """One table per attack class: rows by placement and by source group, columns dev / held-out per detector."""
    names = list(peers)
    lines = []
    for klass, title in CLASSES.items():
        mine = [i for i, p in enumerate(probes) if p.kind == klass]
        entries = {s: sum(len(attack_entries(klass, g, s)) for g in GROUPS) for s in SPLITS}
        lines += [f"**{title}** ({entries['dev']:,} dev + {entries['heldout']:,} held-out entries; "
                  f"{len(mine):,} requests)", "",
                  "| requests | " + " | ".join(f"{n} dev | {n} held-out" for n in names) + " |",
                  "|---|" + "---|---|" * len(names)]
        rows = [("all placements", lambda p: True)]
        rows += [(f"in {pl}", lambda p, pl=pl: p.placement == pl) for pl in CLASS_PLACEMENTS[klass]]
        rows += [("public lists only", lambda p: p.source == "public"),
                 ("CRS regression tests only", lambda p: p.source == "crs-tests")]
        for label, keep in rows:
            cells = []
            for name in names:
                for split in SPLITS:
                    idx = [i for i in mine if probes[i].split == split and keep(probes[i])]
                    cells.append(cell(*rate(peers[name], idx)))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


FAMILIES: dict[str, list[tuple[str, object]]] = {
    "cmdi": [
        ("Windows commands (dir, type, net, reg, netsh, systeminfo, ...)",
         lambda e, d: bool(re.search(r"(?:^|[\s;&|'\"`(])(?:dir|type|net|reg|netsh|systeminfo|tasklist|wmic|"
                                     r"ipconfig|powershell|certutil|bitsadmin)(?:\.exe)?\b", d, re.I))),
        ("quote break before the command (' or \")", lambda e, d: bool(re.match(r"\s*['\"]", d))),
        ("literal \\n separator", lambda e, d: "\\n" in d),
        ("newline separator (%0a)", lambda e, d: "\n" in d or "\r" in d),
        ("$( ) or backticks", lambda e, d: "$(" in d or "`" in d),
        ("; \\| & separators", lambda e, d: bool(re.search(r"[;|&]", d))),
    ],
    "code": [
        ("PHP (<?php, system(, eval(, phpinfo(), ${@...})",
         lambda e, d: bool(re.search(r"<\?|\b(?:system|eval|phpinfo|passthru|shell_exec|assert|exec)\s*\(|"
                                     r"\$\{@|\$_(?:GET|POST|SERVER|REQUEST|COOKIE)", d, re.I))),
        ("server-side includes (<!--#exec, #include, ...)", lambda e, d: "<!--#" in d.replace(" ", "")),
        ("template {{ }} / {% %}", lambda e, d: bool(re.search(r"\{\{.*\}\}|\{%.*%\}", d))),
        ("expression ${ } / #{ } / *{ }", lambda e, d: bool(re.search(r"[$#*]\{.*\}", d))),
        ("web-shell write (echo/printf ... > file.php)",
         lambda e, d: bool(re.search(r"(?:echo|printf|print)\b.*>\s*\S+\.(?:php\d?|phtml|jsp|aspx?)", d, re.I))),
    ],
    "traversal": [
        ("1-2 ../ levels", lambda e, d: 1 <= len(re.findall(r"\.\.[/\\]", d)) <= 2),
        ("3+ ../ levels", lambda e, d: len(re.findall(r"\.\.[/\\]", d)) >= 3),
        ("%-encoded dots or slashes", lambda e, d: bool(re.search(r"%2e|%2f|%5c", e, re.I))),
        ("double-encoded (%25..)", lambda e, d: bool(re.search(r"%25(?:2e|2f|5c|c0|c1|e0)", e, re.I))),
        ("overlong UTF-8 / %u", lambda e, d: bool(re.search(r"%c[01]|%e0%80|%u00", e, re.I))),
        ("backslashes", lambda e, d: "\\" in d),
        ("./ padding", lambda e, d: bool(re.search(r"(?:^|[/\\])\.[/\\]", d))),
        ("no ../: sensitive file named directly", lambda e, d: ".." not in d and not re.search(r"[A-Za-z]:[\\/]", d)),
        ("Windows drive path (C:\\ ...)", lambda e, d: bool(re.search(r"[A-Za-z]:[\\/]", d))),
        ("null byte", lambda e, d: "\x00" in d),
    ],
}


def family_tables(probes: list[Probe], peers: dict[str, list[bool]]) -> str:
    """Detection per family of each class (dev and held-out together; an entry may be in several families)."""
    names = list(peers)
    lines = ["| class | family | entries | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for klass, families in FAMILIES.items():
        idx = [k for k, p in enumerate(probes) if p.kind == klass]
        for label, test in families:
            mine = [k for k in idx if test(probes[k].entry, decoded(probes[k].entry))]  # type: ignore[operator]
            n = len({probes[k].entry for k in mine})
            lines.append(f"| {klass} | {label} | {n:,} | "
                         + " | ".join(f"{100 * sum(peers[nm][k] for k in mine) / len(mine):.1f} %" if mine else "-"
                                      for nm in names) + " |")
    return "\n".join(lines)


def benign_table(probes: list[Probe], peers: dict[str, list[bool]]) -> str:
    names = list(peers)
    benign = [i for i, p in enumerate(probes) if p.kind == "benign"]
    sources = list(dict.fromkeys(probes[i].source for i in benign))
    lines = ["| benign source | requests | " + " | ".join(f"{n} FP" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for label, idx in [("**all benign**", benign)] + [
            (BENIGN_NAMES.get(s, s), [i for i in benign if probes[i].source == s]) for s in sources]:
        lines.append(f"| {label} | {len(idx):,} | " + " | ".join(cell(*rate(peers[n], idx)) for n in names) + " |")
    return "\n".join(lines)
