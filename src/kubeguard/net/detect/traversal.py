"""Path traversal: read a decoded value as file paths and score their structure.

`path_traversal(text, in_uri_path)` splits a value (already URL / entity / overlong decoded by
`decode.normalize`) into path-shaped words, folds the look-alike spellings attackers use for dots
and separators (fullwidth and division-slash characters, `0x2e`, control bytes inside dot runs),
splits each word into segments and scores what it finds:

* how far the path climbs above where it starts (`..`, `...`, `....//`, `..;/` segments);
* what it reaches: a sensitive file or system place (`etc/passwd`, `proc/self/environ`,
  `boot.ini`, `WEB-INF/web.xml`, `.htaccess`, ...), server-side code or configuration (`.php`,
  `.ini`, `.log`, ...), something unknown, or a static asset (`.css`, `.png`, ...);
* evasion: backslashes or mixed separators around the climb, `./` padding, doubled separators,
  runs of three or more dots, control bytes, a null byte;
* where it is anchored: a Windows drive (`C:\\`, `c:/`), a device path (`\\\\?\\`, `\\\\.\\`), a UNC share.

Verdicts. A climb counts when it escapes above the root of an absolute path (always, and in the
request path: `/static/../css/a.css` stays inside and passes), reaches a sensitive file, escapes
three levels, escapes one level to a system place or server-side file (`../config.php`), or
escapes with evasion to anything but a static asset. So `../css/site.css`, `../../img/a.png` and
`../../about` (relative links) pass. With no climb: a sensitive file named as the whole value, or
a system file with its directory anywhere but in prose (`x;/etc/passwd`); a drive path reaching a system
place (`C:\\boot.ini`, `c:/windows/...`, a `.ini`/`.log`/`.config`); any device path; a UNC path to
an address, localhost or an admin share (`$`); a null byte cutting an extension; a PHP-style
wrapper (`php://`, `phar://`, `expect://`, `data:text`, `file://` to a path that counts).
Every verdict needs something `GATE` matches in the value, so the hyperscan gate (and the
request prefilter built from it) never hides a value this could flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Look-alike dots and separators (IIS best-fit mapping, fullwidth forms, division slashes).
_FOLD = str.maketrans({
    "\uff0e": ".", "\u2024": ".", "\ufe52": ".", "\u2026": "...",
    "\u2215": "/", "\u2044": "/", "\uff0f": "/", "\uefc8": "/", "\uf025": "/", "\u29f8": "/",
    "\u2216": "\\", "\uff3c": "\\", "\ufe68": "\\", "\u29f5": "\\",
    "\ufffd": "/",  # an invalid (overlong) byte an application decoded before us: most stood for a separator
})
_FOLD_CHARS = "".join(k for k in (chr(c) for c in _FOLD) if len(k) == 1)
_HEX_DOT = re.compile(r"0x(2e|2f|5c)", re.I)
_HEX_CHAR = {"2e": ".", "2f": "/", "5c": "\\"}
# Control bytes dropped inside a word; not \x01, which separates values in the joined hyperscan scan.
_CONTROL = re.compile(r"[\x02-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Words: runs of characters a path can hold (no space, quote, bracket, '=', '&', ',', '|').
_WORD = re.compile(r"[^\s\"'`<>()\[\]{}|,=&*+]+")
_SEP = re.compile(r"[/\\]")
MAX_WORDS = 4096  # path-shaped words read per value
_PATHISH = re.compile(r"[./\\:\x00-\x1f\x7f]")
# A null byte cutting a path: a file name or directory before it, at most an extension after it.
_NUL_HEAD = re.compile(r"[\w.:~-]*(?:(?:[/\\][\w.:~ -]*)+|\w\.[a-z0-9]{1,8})", re.I)
_NUL_SPAN = 256  # characters either side of a null byte read for a cut
_NUL_TAIL = re.compile(r"\x00*(?:\.?[a-z0-9]{1,5})?\x00*", re.I)
_DRIVE = re.compile(r"[a-z]:(?=[/\\])", re.I)
_INNER_DRIVE = re.compile(r"[/\\][a-z]:[/\\]", re.I)  # a drive after a separator, inside a word
_GLUED_DRIVE = re.compile(r"[a-z]:(?=[a-z])", re.I)  # `c:windows/system32`: read as `windows/system32`
# PHP / Java stream wrappers that read or run something (a word starting with one), and `file:` URLs.
_WRAPPER = re.compile(
    r"(?:php|phar|zip|expect|glob|netdoc|compress\.[a-z0-9]+)://|data:(?://)?text/|jar:(?:file|https?):", re.I)
_FILE_URL = re.compile(r"file:(?://[^/\\]*)?(?=[/\\])", re.I)



def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Sensitive places: path suffixes (lowercase, '/' separated, '*' one segment). STRONG ones count anywhere
# in a value once their directory is named; the others when the value is just that path.
STRONG = (
    "etc/passwd", "etc/shadow", "etc/gshadow", "etc/master.passwd", "etc/sudoers", "etc/security/passwd",
    "proc/*/environ", "proc/*/cmdline", "proc/*/maps", "proc/*/mem", "proc/*/fd", "proc/*/root", "proc/*/cwd",
    "proc/*/status", "boot.ini", "win.ini", "system.ini", "windows/system32", "winnt/system32",
    "windows/repair", "winnt/repair", ".htpasswd", ".bash_history", ".ssh/id_rsa", ".ssh/id_dsa", ".ssh/id_ecdsa",
    ".ssh/id_ed25519",
    "var/run/secrets", ".aws/credentials", ".kube/config", ".docker/config.json", "web-inf/web.xml",
    "meta-inf/context.xml", "wp-config.php", "ntuser.dat", "config/sam", "repair/sam",
)
NAMED = (
    ".htaccess", "web.config", ".env", "etc/hosts", "etc/group", "etc/issue", "etc/motd", "etc/crontab",
    "master.passwd", "etc/security/group", "etc/security/user",
    "etc/fstab", "etc/hostname", "etc/resolv.conf", "etc/os-release", "etc/profile", "etc/inittab", "etc/shells",
    "etc/ssh/sshd_config", "etc/my.cnf", "etc/mysql/my.cnf", "etc/httpd/conf/httpd.conf", "etc/apache2/apache2.conf",
    "etc/nginx/nginx.conf", "etc/php.ini", "php.ini", "httpd.conf", "my.cnf", ".git/config", "git/head", ".git/head",
    ".ssh/authorized_keys", ".ssh/known_hosts", ".bashrc", ".bash_profile", ".profile", ".mysql_history",
    ".netrc", ".pgpass", "global.asa", "metabase.xml", "applicationhost.config", "access.log", "access_log",
    "error.log", "error_log", "web-inf/", "meta-inf/", ".docker/", "etc/subuid", "etc/subgid",
    "pagefile.sys", "hiberfil.sys", "desktop.ini",
    "config.php", "configuration.php", "localsettings.php", "settings.php", "local.xml",
    "unattend.xml", "unattended.xml", "unattend.txt", "unattended.txt", "sysprep.inf", "sysprep.xml", "ntuser.ini",
)
# Directories an attacker climbs to (the first segment reached), and file types worth reading.
SYSTEM_DIRS = _words(
    "etc proc sys dev var usr bin sbin boot root windows winnt win32 system32 inetpub wwwroot xampp wamp appserv "
    "apache apache2 httpd nginx tomcat jakarta web-inf meta-inf .ssh .aws .kube .git .svn programdata")
SERVER_EXT = _words(
    "php php3 php4 php5 php7 phtml phar inc asp aspx asa asax ascx ashx jsp jspx cgi exe dll sys conf cnf cfg "
    "config ini log properties env sqlite db mdb bak old orig swp key pem crt p12 pfx jks keystore passwd "
    "htaccess htpasswd")
# Drive paths: system places of a Windows host (the first directory), besides sensitive files and SERVER_EXT.
WINDOWS_DIRS = _words(
    "windows winnt win32 system32 inetpub wwwroot xampp wamp appserv apache apache2 program "
    "programdata $recycle.bin boot sysprep minint php php4 php5 mysql") | {
    "documents and settings", "system volume information", "program files", "program files (x86)"}
ASSET_EXT = _words(
    "css scss less js mjs map ts png jpg jpeg gif svg webp avif ico bmp tif tiff woff woff2 ttf eot otf html "
    "htm xhtml md markdown txt rst pdf doc docx xls xlsx ppt pptx odt ods csv json mp3 mp4 m4a wav ogg webm "
    "mov avi zip gz tgz rar 7z")


def _keyword(entry: str) -> str:
    """The segment of `entry` the gate looks for (its longest literal one)."""
    return max((s for s in entry.split("/") if s and s != "*"), key=len)


_KEYWORDS = sorted({_keyword(e) for e in (*STRONG, *NAMED)}, key=len, reverse=True)
# The hyperscan gate: a value no part of which matches cannot be flagged (see `tests/net/detect/test_traversal.py`).
GATE_PARTS = (
    r"\.\.", r"\.\?", r"\?\.", r"0x2e", r"[\x00\x02-\x08\x0b\x0c\x0e-\x1f\x7f]", r"\\\\", r"//[?.]/",
    r"(?:^|[^a-z0-9])[a-z]:[/\\]",
    r"(?:php|phar|zip|expect|glob|netdoc|jar|compress\.[a-z0-9]+|data|file):",
    *(re.escape(ch) for ch in _FOLD_CHARS), "|".join(re.escape(k) for k in _KEYWORDS),
)
GATE = "|".join(GATE_PARTS)
_NUL_KEYS = tuple(_KEYWORDS)
_GATE_RE = re.compile(GATE, re.I | re.S | re.M)


@dataclass(slots=True)
class _Path:
    """One path-shaped word read as segments."""

    anchor: str  # "", "/", "drive", "unc", "device"
    names: list[str]  # target segments after the last climb (lowercase, NUL tail cut)
    climbs: int
    escape: int  # levels above the starting directory
    evasion: int
    nul_cut: bool  # a null byte right after a file name, with at most an extension after it
    host: str = ""  # UNC host
    open_end: bool = False  # ends with a separator after its last climb


def _fold(text: str) -> tuple[str, bool]:
    """`text` with look-alike dots/separators and `0x2e`-style spellings folded; True when any was."""
    out = text.translate(_FOLD)
    if "0x" in out or "0X" in out:
        out = _HEX_DOT.sub(lambda m: _HEX_CHAR[m.group(1).lower()], out)
    return out, out != text


def _ext(name: str) -> str:
    return name.rsplit(".", 1)[1] if "." in name.strip(".") else ""


def _matches(names: list[str], entry: str) -> bool:
    """Whether `entry` (a '/'-separated suffix, '*' any one segment) occurs as consecutive segments of `names`."""
    want = [s for s in entry.split("/") if s]
    if entry.endswith("/"):
        return any(n == want[0] for n in names[:-1])
    for i in range(len(names) - len(want) + 1):
        if all(w in ("*", n) for w, n in zip(want, names[i : i + len(want)], strict=True)):
            return True
    return False


# (keyword, entry, kind): an entry is only tried when its keyword is one of the segments
_ENTRIES = tuple((_keyword(e), e, kind) for kind, group in (("strong", STRONG), ("named", NAMED)) for e in group)


def target_weight(names: list[str]) -> tuple[int, str]:
    """3 sensitive (strong or named), 2 system place or server-side file, 1 unknown, 0 static asset."""
    if not names:
        return 1, ""
    present = set(names)
    for keyword, entry, kind in _ENTRIES:
        if keyword in present and _matches(names, entry):
            return 3, kind
    if names[0] in SYSTEM_DIRS or " ".join(names[:2]) in ("program files", "documents and settings"):
        return 2, ""
    if _ext(names[-1]) in SERVER_EXT:
        return 2, ""
    if _ext(names[-1]) in ASSET_EXT:
        return 0, ""
    return 1, ""


def _read(word: str) -> _Path | None:
    """Segments of one word: anchor, climbs, evasion and target."""
    evasion = 0
    nul_cut = False
    if "\x00" in word:
        head, _, tail = word.partition("\x00")
        evasion = 2
        head = head[-_NUL_SPAN:]  # bounded: the regex backtracks on long heads
        if (_NUL_HEAD.fullmatch(head) or head.lower().endswith(_NUL_KEYS)) and _NUL_TAIL.fullmatch(tail[:_NUL_SPAN]):
            nul_cut = True
        word = word.replace("\x00", "")  # `.%00./`, `%00../../x`: read the path around the nulls
    if _CONTROL.search(word):
        word = _CONTROL.sub("", word)
        evasion = 2
    anchor = ""
    host = ""
    if word.startswith(("\\\\?\\", "\\\\.\\", "//?/", "//./")):
        anchor, word = "device", word[4:]
    elif word.startswith("\\\\") and len(word) > 2 and word[2] not in "\\/":
        anchor = "unc"
        host, _, word = word[2:].partition("\\")
        host = host.lower()
    drive = _DRIVE.match(word.lstrip("/\\"))
    if drive and anchor in ("", "device"):
        anchor = "drive" if anchor == "" else anchor
        word = word.lstrip("/\\")[2:]
    elif anchor == "" and word[:1] in ("/", "\\"):
        anchor = "/"
    if anchor != "drive" and _GLUED_DRIVE.match(word):
        word = word[2:]
    parts = _SEP.split(word)
    seps = _SEP.findall(word)
    if len(parts) == 1 and not anchor and not nul_cut and set(word) <= {".", ";"}:
        return None  # an ellipsis, not a path
    depth = low = climbs = dots = empties = 0
    climb_seps: set[str] = set()
    names: list[str] = []
    for k, raw in enumerate(parts):
        seg = raw.split(";", 1)[0].strip()  # `..;/` (Tomcat path parameters)
        if len(seg) >= 2 and set(seg) <= {".", "?"} and "." in seg:
            climbs += 1
            depth -= 1
            low = min(low, depth)
            names = []
            if len(seg) > 2 or raw != seg or "?" in seg:
                evasion = 2
            climb_seps.update(seps[max(0, k - 1) : k + 1])
        elif seg == ".":
            dots += 1
        elif not seg:
            if 0 < k < len(parts) - 1:
                empties += 1
        else:
            depth += 1
            names.append(seg.lower())
    if climbs:
        if climb_seps == {"/", "\\"}:
            evasion = 2
        elif "\\" in climb_seps or empties:
            evasion = max(evasion, 1)
    if dots >= 2:
        evasion = max(evasion, 1 if dots == 2 else 2)
    if not (climbs or names or anchor or nul_cut):
        return None
    open_end = bool(seps) and word[-1:] in ("/", "\\") and not names
    return _Path(anchor, names, climbs, -low, evasion, nul_cut, host, open_end)


def _verdict(path: _Path, whole: bool, in_uri_path: bool, prose: bool) -> bool:
    weight, kind = target_weight(path.names)
    if path.climbs and not path.names and path.open_end:
        weight = 2  # `../../`: a climb waiting for its target (a template, or a directory listing)
    if path.nul_cut:
        return True
    if path.climbs:
        if in_uri_path and path.escape:
            return True  # above the root of the request path
        evasion = min(path.evasion, 2)
        if weight == 3 or (path.escape and path.anchor):
            return True  # a climb to a sensitive file, or above an absolute root
        return (path.escape >= 3 or (path.escape >= 1 and weight >= 2) or (evasion >= 1 and weight >= 1
                and path.escape >= 1) or (evasion == 2 and (path.escape >= 2 or weight >= 2)))
    if path.anchor == "device":
        return True
    if path.anchor == "unc":
        host = path.host
        admin_share = bool(path.names) and path.names[0].endswith("$")
        local = host in ("localhost", "127.0.0.1") or bool(re.fullmatch(r"[\d.]+|\[?[0-9a-f:]+\]?", host))
        return admin_share or local or weight >= 2
    if path.anchor == "drive":
        first = path.names[0] if path.names else ""
        appdata = len(path.names) > 2 and path.names[0] == "users" and path.names[2] in ("appdata", "ntuser.dat")
        return not path.names or weight == 3 or first in WINDOWS_DIRS or appdata or _ext(path.names[-1]) in (
            (SERVER_EXT | {"inf", "dat"}) - {"exe", "dll", "db", "bak", "old", "orig", "swp"})
    if kind == "strong":
        return whole or (len(path.names) > 1 and not prose)
    return kind == "named" and whole


def path_traversal(text: str, in_uri_path: bool = False) -> str | None:
    """The path-shaped word of `text` that reads as traversal (or an absolute sensitive path), else None."""
    if not _GATE_RE.search(text):
        return None
    folded, _ = _fold(text)
    stripped = folded.strip()
    prose = stripped.count(" ") >= 3  # a sentence or a table row, not a path list
    budget = MAX_WORDS
    for match in _WORD.finditer(stripped):
        word = match.group(0)
        if not word.strip("/\\"):
            continue
        whole = len(word) == len(stripped)
        if _WRAPPER.match(word):
            return word[:160]
        file_url = _FILE_URL.match(word)
        if file_url:  # `file:///etc/passwd`: the path, read as a path even in prose
            word, whole = word[file_url.end() :], True
        if not whole and not _PATHISH.search(word):
            continue  # a plain word in a sentence: no separator, dot, drive or control byte to read
        budget -= 1
        if budget < 0:
            break  # bounded work per value
        readings = [word]
        inner_drive = _INNER_DRIVE.search(word)
        if inner_drive:  # `/download/C:/mysql/my.ini`: a drive path a handler joined to its own prefix
            readings.append(word[inner_drive.start() + 1 :])
        if "\x00" in word and word.split("\x00", 1)[0].strip("/\\."):
            readings.append(word.split("\x00", 1)[0])  # what a C library opens: the path up to the null
        for reading in readings:
            path = _read(reading)
            if path is not None and _verdict(path, whole, in_uri_path, prose):
                return word[:160]
    return None
