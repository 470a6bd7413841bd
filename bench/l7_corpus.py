"""Build the L7 attack-class corpora under bench/data/l7 from public payload lists and local benign text.

Run (maintainers, when a source moves): `PYTHONPATH=src:. python -m bench.l7_corpus --repo NAME=GITDIR ...`
with NAME one of `REPOS` and GITDIR a clone (bare or not) of that repository at the commit named in
bench/data/l7/SOURCE. Benign corpora come from this machine (Debian package file lists, message
catalogs, /usr/share/doc, botocore's API examples in the venv). The output is data only; this module
is how it was made and which entries were dropped (the filters below), so it can be rebuilt.

Split: an entry is held out when the first 8 hex digits of sha256("CLASS\\0ENTRY") mod 10 < 3 (30 %),
so the split never changes when lists grow, and detector authors can look at dev only.
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import hashlib
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import yaml

DATA = Path(__file__).resolve().parent / "data" / "l7"
REPOS = ("swisskyrepo/PayloadsAllTheThings", "payloadbox/command-injection-payload-list",
         "payloadbox/ssti-payloads", "fuzzdb-project/fuzzdb", "coreruleset/coreruleset")
PATT = "swisskyrepo/PayloadsAllTheThings"
FUZZDB = "fuzzdb-project/fuzzdb"
CRS = "coreruleset/coreruleset"

# (class, repo, path inside the repo) of plain one-payload-per-line lists
LISTS = [
    ("cmdi", PATT, "Command Injection/Intruder/command_exec.txt"),
    ("cmdi", PATT, "Command Injection/Intruder/command-execution-unix.txt"),
    ("cmdi", FUZZDB, "attack/os-cmd-execution/OSCommandInject.Windows.txt"),
    ("cmdi", FUZZDB, "attack/os-cmd-execution/command-execution-unix.txt"),
    ("code", PATT, "Server Side Template Injection/Intruder/ssti.fuzz"),
    ("code", PATT, "Server Side Include Injection/Files/ssi_esi.txt"),
    ("code", "payloadbox/ssti-payloads", "Intruder/ssti-payloads.txt"),
    ("code", FUZZDB, "attack/server-side-include/server-side-includes-generic.txt"),
    ("traversal", PATT, "Directory Traversal/Intruder/directory_traversal.txt"),
    ("traversal", PATT, "Directory Traversal/Intruder/deep_traversal.txt"),
    ("traversal", PATT, "Directory Traversal/Intruder/traversals-8-deep-exotic-encoding.txt"),
    ("traversal", PATT, "Directory Traversal/Intruder/dotdotpwn.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/JHADDIX_LFI.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/Traversal.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/simple-check.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/dot-slash-PathTraversal_and_LFI_pairing.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/List_Of_File_To_Include_NullByteAdded.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/LFI-WindowsFileCheck.txt"),
    ("traversal", PATT, "File Inclusion/Intruders/Windows-files.txt"),
    ("traversal", FUZZDB, "attack/path-traversal/path-traversal-windows.txt"),
]
# markdown pages whose code blocks hold code-injection payloads (lines kept only with a code marker)
MARKDOWN = [
    ("code", PATT, "Command Injection/README.md"),
    ("code", PATT, "File Inclusion/LFI-to-RCE.md"),
    ("code", PATT, "Upload Insecure Files/README.md"),
    ("code", PATT, "Server Side Template Injection/PHP.md"),
    ("code", PATT, "Server Side Template Injection/Python.md"),
    ("code", PATT, "Server Side Template Injection/Java.md"),
    ("code", PATT, "Server Side Template Injection/JavaScript.md"),
    ("code", PATT, "Server Side Template Injection/Ruby.md"),
]
# CRS regression tests: positive tests (expect_ids) of these rule files, by class
CRS_TESTS = {"cmdi": ("REQUEST-932-",), "code": ("REQUEST-933-", "REQUEST-934-"), "traversal": ("REQUEST-930-",)}
# SSRF (934110, 934120, and 934190: scheme-less localhost names), prototype pollution (934130) and ORM lookup
# operators (934210, 934220: `{"user__city__startswith": "p"}`): not code injection
CRS_SKIP_RULES = {934110, 934120, 934130, 934190, 934210, 934220}
DOTDOTPWN_KEEP = 1500  # dotdotpwn.txt has 21k permutations; keep the 1,500 with the smallest hash
MAX_LEN = 2000
HELD_OUT = 3  # of 10

CODE_MARK = re.compile(
    r"<\?(?:php|=|\s)|<!--\s*#\s*(?:exec|include|echo|config|printenv|set|fsize|flastmod|if)|\{\{.*\}\}|\{%.*%\}|"
    r"\$\{.+\}|#\{.+\}|\*\{.+\}|@\(.+\)|<%=?.*%>|\[\[.*\]\]|"
    r"\b(?:system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|eval|assert|phpinfo|create_function|"
    r"call_user_func(?:_array)?|preg_replace|include|require(?:_once)?|include_once|file_get_contents|"
    r"file_put_contents|fopen|base64_decode|str_rot13|gzinflate|chr|readfile|highlight_file|show_source)\s*\(|"
    r"child_process|process\.mainModule|__import__|__class__|__globals__|__builtins__|__subclasses__|"
    r"Runtime\.getRuntime|getClass\(\)|T\(java\.|\bnew\s+java\.|ProcessBuilder|\.popen\(|\bIO\.popen|"
    r"\bKernel\.|`[^`]+`|\bFunction\(|\brequire\(|\bFile\.open", re.I)
WRAPPER = re.compile(r"^(?:php|data|expect|zip|phar|glob|ssh2|rar|ogg|input|zlib|compress\.\w+|https?|ftp|ldap|"
                     r"gopher|dict|jar|netdoc|file)\s*:", re.I)
DOTS = re.compile(r"\.{2,}[/\\]|[/\\]\.{2,}(?:$|[/\\;%?])|^\.{2,}$|…")
DRIVE = re.compile(r"(?:^|[^A-Za-z])[A-Za-z]:[\\/]")
SENSITIVE = re.compile(
    r"(?:^|[/\\])(?:passwd|master\.passwd|shadow|gshadow|group|sudoers|\.htaccess|\.htpasswd|web\.config|"
    r"boot\.ini|win\.ini|system\.ini|php\.ini|httpd\.conf|my\.cnf|id_rsa|id_dsa|authorized_keys|known_hosts|"
    r"\.bash_history|\.bashrc|\.ssh|environ|cmdline|hosts|issue|sam|system32|applicationhost\.config|"
    r"wp-config\.php|config\.php)(?:$|[\\/%?;\s\x00])", re.I)


def git_show(repos: dict[str, Path], repo: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repos[repo]), "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout.decode("utf-8", "replace")


def head(repos: dict[str, Path], repo: str) -> str:
    return subprocess.run(["git", "-C", str(repos[repo]), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def lines_of(text: str) -> list[str]:
    """Payload lines: no blank lines, no `# comment` lines, no trailing CR."""
    out = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        if not line.strip() or re.match(r"#(?:\s|$|!)", line):
            continue
        out.append(line)
    return out


def decoded(entry: str, rounds: int = 3) -> str:
    """URL-decode up to `rounds` layers (plus IIS %u and overlong UTF-8 dots/slashes) for classification only."""
    text = entry
    for _ in range(rounds):
        text = re.sub(r"%u(00[0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text, flags=re.I)
        text = re.sub(r"%c0%ae|%e0%80%ae|%c0%2e|%c0\.", ".", text, flags=re.I)
        text = re.sub(r"%c0%af|%e0%80%af|%c1%9c|%c0%5c|%c1%1c|%c0%2f", "/", text, flags=re.I)
        new = unquote(text, errors="replace")
        if new == text:
            break
        text = new
    return text


def is_code(entry: str) -> bool:
    return bool(CODE_MARK.search(decoded(entry)))


def is_traversal(entry: str) -> bool:
    text = decoded(entry)
    if WRAPPER.match(text.strip()):
        return False
    return bool(DOTS.search(text) or "\x00" in text or DRIVE.search(text) or SENSITIVE.search(text))


def is_cmdi(entry: str) -> bool:
    """A command after a separator, substitution or newline: at least two letters and one shell operator."""
    text = decoded(entry)
    return len(re.findall(r"[A-Za-z]", text)) >= 2 and bool(re.search(r"[;|&`\n\r]|\$\(|\\n|%0a|^\s*[a-z]", text))


def classify(klass: str, entry: str) -> str | None:
    """The class an entry is kept in, or None (dropped). SSI/PHP found in command lists moves to `code`."""
    if len(entry) > MAX_LEN or len(entry.strip()) < 3:
        return None
    if klass == "cmdi":
        if is_code(entry) and not re.search(r"\$\(|`", decoded(entry)):
            return "code"
        return "cmdi" if is_cmdi(entry) else None
    if klass == "code":
        text = decoded(entry)
        if re.match(r"\s*<esi:", text, re.I):  # edge side includes: a cache's feature, not code execution
            return None
        return "code" if is_code(entry) else None
    if klass == "traversal":
        return "traversal" if is_traversal(entry) else None
    return None


def readme_code_lines(text: str) -> list[str]:
    """Lines inside ``` fenced blocks of a markdown page."""
    out, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and line.strip():
            out.append(line.strip())
    return out


# a positive test CRS itself describes as a false positive (the rule matches benign text, "expected failure")
CRS_FP_DESC = re.compile(r"false.positive", re.I)
# an '&' that starts an HTML entity (&quot; &#8222; &#x7B;) is part of the value, not a parameter separator
PARAM_SEP = re.compile(r"&(?!(?:#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);)")


def crs_payloads(text: str) -> tuple[list[str], list[str], int]:
    """A CRS regression-test file's values (query/form values, cookies, odd headers): those of its positive
    tests, those of the tests (positive or negative) CRS describes as false positives (benign text), and how
    many values of positive tests that description dropped."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("rule_id") in CRS_SKIP_RULES:
        return [], [], 0
    out: list[str] = []
    benign: list[str] = []
    labelled = 0
    plain_headers = {"host", "accept", "user-agent", "content-type", "content-length", "connection",
                     "proxy-connection", "accept-encoding", "accept-language", "cache-control", "keep-alive"}
    for test in doc.get("tests", []):
        for stage in test.get("stages", []):
            stage = stage.get("stage", stage)
            inp, log = stage.get("input", {}), (stage.get("output", {}) or {}).get("log", {}) or {}
            positive = bool(log.get("expect_ids") or (stage.get("output") or {}).get("expect_ids"))
            said_benign = bool(CRS_FP_DESC.search(str(test.get("desc", ""))))
            if not positive and not said_benign:
                continue  # a negative test of one rule may well carry another rule's attack
            sink = benign if said_benign else out
            wire: list[str] = []
            query = urlsplit(str(inp.get("uri", ""))).query
            data = inp.get("data", "")
            headers = inp.get("headers", {}) or {}
            ctype = str({k.lower(): v for k, v in headers.items()}.get("content-type", "")).lower()
            if isinstance(data, list):
                data = "".join(map(str, data))
            data = str(data or "")
            if "multipart" in ctype:
                data = ""  # the payload is a part or its file name: an upload, not a parameter value
            elif "xml" in ctype or data.lstrip().startswith("<?xml"):
                wire += [quote_raw(html.unescape(v)) for v in re.findall(r'="([^"]*)"|>([^<]+)<', data)
                         for v in v if v]
                data = ""
            elif "json" in ctype:
                try:
                    wire += [quote_raw(v) for v in json_strings(json.loads(data))]
                except ValueError:
                    wire.append(quote_raw(data))
                data = ""
            for part in (query, data):
                if not part:
                    continue
                if "=" not in part:
                    wire.append(part)
                    continue
                wire += [v for _, v in (p.split("=", 1) if "=" in p else ("", p) for p in PARAM_SEP.split(part))]
            for name, value in headers.items():
                if name.lower() == "cookie":
                    wire += [c.split("=", 1)[1] for c in str(value).split(";") if "=" in c]
                elif name.lower() not in plain_headers:
                    wire.append(str(value))
            # wire form: '+' is a space; %XX stays, so the value reaches a server as the test sent it
            values = [w.replace("+", " ").replace("\n", "%0A").replace("\r", "%0D") for w in wire
                      if len(w) >= 3 and not re.fullmatch(r"[A-Za-z0-9_.\- ]*", unquote(w.replace("+", " ")))]
            sink += values
            labelled += len(values) if positive and said_benign else 0
    return out, benign, labelled


def quote_raw(value: str) -> str:
    """A decoded value in the wire form the lists use: only '%' and '+' escaped (and CR/LF, to stay on one line)."""
    return value.replace("%", "%25").replace("+", "%2B").replace("\n", "%0A").replace("\r", "%0D")


def json_strings(doc: object) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in [*json_strings(k), *json_strings(v)]]
    if isinstance(doc, list):
        return [s for v in doc for s in json_strings(v)]
    return []


def held_out(klass: str, entry: str) -> bool:
    return int(hashlib.sha256(f"{klass}\0{entry}".encode()).hexdigest()[:8], 16) % 10 < HELD_OUT


def build_attacks(repos: dict[str, Path]) -> dict[str, object]:
    kept: dict[str, dict[str, str]] = {"cmdi": {}, "code": {}, "traversal": {}}
    stats: dict[str, dict[str, int]] = {}

    def add(origin: str, klass: str, entries: list[str]) -> None:
        st = stats.setdefault(origin, {"read": 0, "kept": 0, "dropped": 0, "duplicate": 0})
        crs = origin.startswith(CRS)
        for entry in entries:
            st["read"] += 1
            # CRS positive tests are curated per rule file: kept in their class (plain words were dropped already)
            target = (klass if len(entry) <= MAX_LEN else None) if crs else classify(klass, entry)
            if target is None:
                st["dropped"] += 1
            elif entry in kept[target]:
                st["duplicate"] += 1
            else:
                kept[target][entry] = "crs-tests" if crs else "public"
                st["kept"] += 1

    for klass, repo, path in LISTS:
        entries = lines_of(git_show(repos, repo, path))
        if path.endswith("OSCommandInject.Windows.txt"):  # written URL-encoded: '+' is a space
            entries = [e.replace("+", " ") for e in entries]
        if path.endswith("dotdotpwn.txt"):
            entries = sorted(entries, key=lambda e: hashlib.sha256(e.encode()).hexdigest())[:DOTDOTPWN_KEEP]
        add(f"{repo}:{path}", klass, entries)
    text = git_show(repos, "payloadbox/command-injection-payload-list", "README.md")
    add("payloadbox/command-injection-payload-list:README.md", "cmdi",
        [html.unescape(x) for x in readme_code_lines(text)])
    for klass, repo, path in MARKDOWN:
        add(f"{repo}:{path}", klass, readme_code_lines(git_show(repos, repo, path)))
    listing = subprocess.run(["git", "-C", str(repos[CRS]), "ls-tree", "-r", "--name-only", "HEAD",
                              "tests/regression/tests/"], check=True, capture_output=True, text=True).stdout
    # values of the tests CRS describes as false positives are benign by CRS's own account: a positive test's
    # companion parameter that also appears there is not an attack
    crs_files = {klass: [crs_payloads(git_show(repos, CRS, path)) for path in sorted(listing.split())
                         if path.endswith(".yaml") and any(f"/{p}" in path for p in prefixes)]
                 for klass, prefixes in CRS_TESTS.items()}
    crs_benign = {v for files in crs_files.values() for _, benign, _ in files for v in benign}
    for klass, prefixes in CRS_TESTS.items():
        origin = f"{CRS}:tests/regression/tests/{prefixes[0]}*"
        for positive, _, labelled in crs_files[klass]:
            st = stats.setdefault(origin, {"read": 0, "kept": 0, "dropped": 0, "duplicate": 0})
            benign_here = labelled + sum(v in crs_benign for v in positive)
            st["read"] += benign_here
            st["dropped"] += benign_here
            add(origin, klass, [v for v in positive if v not in crs_benign])
    out = DATA / "attacks"
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for old in out.glob("*.txt"):
        old.unlink()
    for klass, entries in kept.items():
        for group in ("public", "crs-tests"):
            mine = [e for e, g in entries.items() if g == group]
            dev = sorted(e for e in mine if not held_out(klass, e))
            test = sorted(e for e in mine if held_out(klass, e))
            (out / f"{klass}.{group}.dev.txt").write_text("".join(e + "\n" for e in dev))
            (out / f"{klass}.{group}.heldout.txt").write_text("".join(e + "\n" for e in test))
            counts[f"{klass}.{group}"] = {"dev": len(dev), "heldout": len(test)}
    return {"counts": counts, "sources": stats, "commits": {r: head(repos, r) for r in repos}}


# ---------------------------------------------------------------- benign


def sample(items: list[str], n: int, salt: str) -> list[str]:
    """The n items with the smallest sha256(salt + item): deterministic, spread over the whole list."""
    uniq = sorted(set(items))
    return sorted(uniq, key=lambda s: hashlib.sha256(f"{salt}\0{s}".encode()).hexdigest())[:n]


def benign_paths() -> tuple[list[str], list[str]]:
    paths = []
    for listing in sorted(Path("/var/lib/dpkg/info").glob("*.list")):
        paths += [p for p in listing.read_text(errors="replace").splitlines() if p.count("/") >= 2]
    files = [p for p in paths if "." in p.rsplit("/", 1)[-1]]
    return sample(paths, 1500, "paths"), sample([p.rsplit("/", 1)[-1] for p in files], 1000, "names")


LANGS = ("de", "fr", "es", "it", "pt_BR", "nl", "pl", "cs", "sv", "fi", "tr", "ru", "uk", "el", "he", "ar",
         "hi", "ja", "ko", "zh_CN", "zh_TW", "vi", "hu", "ro")
CATALOGS = ("gtk30", "glib20", "iso_3166", "shared-mime-info")


def benign_text() -> list[str]:
    out = []
    for lang in LANGS:
        strings = []
        for domain in CATALOGS:
            mo = Path(f"/usr/share/locale/{lang}/LC_MESSAGES/{domain}.mo")
            if not mo.exists():
                continue
            with mo.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            strings += [v for k, v in catalog.items() if k and isinstance(v, str) and 3 <= len(v) <= 300]
        out += sample(strings, 100, f"text-{lang}")
    return out


def benign_prose() -> tuple[list[str], list[str]]:
    lines, packages = [], set()
    docs = sorted(Path("/usr/share/doc").glob("*/README*")) + sorted(Path("/usr/share/doc").glob("*/*.md*"))
    for doc in docs:
        try:
            raw = gzip.decompress(doc.read_bytes()) if doc.suffix == ".gz" else doc.read_bytes()
        except (OSError, gzip.BadGzipFile, EOFError):
            continue
        text = raw.decode("utf-8", "replace")
        got = [ln.strip() for ln in text.splitlines() if 20 <= len(ln.strip()) <= 300]
        if got:
            packages.add(doc.parent.name)
        lines += got
    return sample(lines, 1500, "prose"), sorted(packages)


def botocore_examples() -> tuple[list[str], list[str], str]:
    """JSON bodies (json/rest-json services) and form posts (query/ec2 services) from botocore's examples-1.json."""
    import botocore

    root = Path(botocore.__file__).parent / "data"
    bodies, forms = [], []
    for ex in sorted(root.glob("*/*/examples-1.json")):
        service = ex.parent / "service-2.json.gz"
        if not service.exists():
            service = ex.parent / "service-2.json"
        if not service.exists():
            continue
        raw = service.read_bytes()
        meta = json.loads(gzip.decompress(raw) if service.suffix == ".gz" else raw)["metadata"]
        protocol, version = meta.get("protocol"), meta.get("apiVersion", "")
        for op, examples in json.loads(ex.read_text()).get("examples", {}).items():
            for example in examples:
                data = example.get("input")
                if not isinstance(data, dict) or not data:
                    continue
                if protocol in ("json", "rest-json"):
                    bodies.append(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
                elif protocol in ("query", "ec2"):
                    forms.append(form_body({"Action": op, "Version": version, **flatten(data)}))
    return sample(bodies, 1500, "json"), sample(forms, 1000, "forms"), botocore.__version__


def flatten(data: object, prefix: str = "") -> dict[str, str]:
    """AWS query-protocol flattening: lists as Name.member.N, maps/structures as Name.Key."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data, 1):
            out.update(flatten(v, f"{prefix}.member.{i}"))
    else:
        out[prefix] = str(data).lower() if isinstance(data, bool) else str(data)
    return out


def form_body(fields: dict[str, str]) -> str:
    return urlencode(fields)


def build_benign() -> dict[str, object]:
    out = DATA / "benign"
    out.mkdir(parents=True, exist_ok=True)
    paths, names = benign_paths()
    prose, packages = benign_prose()
    bodies, forms, boto = botocore_examples()
    files = {"paths": paths, "filenames": names, "text": benign_text(), "prose": prose,
             "json_api": bodies, "forms": forms}
    for name, items in files.items():
        clean = [i for i in items if "\n" not in i and "\r" not in i]
        (out / f"{name}.txt").write_text("".join(i + "\n" for i in clean))
    return {"counts": {k: len(v) for k, v in files.items()}, "doc_packages": packages, "botocore": boto}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", action="append", default=[], metavar="NAME=GITDIR")
    ap.add_argument("--benign-only", action="store_true")
    ap.add_argument("--attacks-only", action="store_true")
    args = ap.parse_args()
    if not args.benign_only:
        repos = {}
        for spec in args.repo:
            name, _, path = spec.partition("=")
            repos[name] = Path(path)
        missing = [r for r in REPOS if r not in repos]
        if missing:
            sys.exit(f"l7_corpus: --repo NAME=GITDIR missing for {', '.join(missing)}")
        print(json.dumps(build_attacks(repos), indent=1))
    if not args.attacks_only:
        print(json.dumps(build_benign(), indent=1))


if __name__ == "__main__":
    main()
