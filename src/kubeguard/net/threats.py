"""Stream and protocol-state detections of the engine itself: mining, reverse shells, old TLS,
Heartbleed, SSH v1, and names of known mining pools (TLS SNI, DNS questions and CNAME chains).

Content patterns run through one hyperscan database over the first bytes of flows that speak
no known protocol (or Stratum); the caller keeps a short overlap between chunks so that a
pattern split over 1-byte segments is still seen.
"""

from __future__ import annotations

from collections.abc import Callable

import hyperscan

from kubeguard.model import Severity
from kubeguard.net.proto.ssh import SshBanner
from kubeguard.net.proto.stratum import parse_line as parse_stratum_line
from kubeguard.net.proto.tls import Heartbeat, Hello, version_name
from kubeguard.net.types import Detection

OVERLAP = 256  # bytes kept from the previous chunk: longer than any pattern below needs

# Known public mining pools (suffix match on names). Small and shipped with the code on purpose.
POOL_DOMAINS = (
    "nanopool.org", "minexmr.com", "supportxmr.com", "xmrpool.eu", "moneroocean.stream", "hashvault.pro",
    "c3pool.com", "herominers.com", "2miners.com", "f2pool.com", "ethermine.org", "nicehash.com",
    "unmineable.com", "viabtc.com", "antpool.com", "slushpool.com", "braiins.com", "poolin.com",
    "miningpoolhub.com", "minergate.com", "dwarfpool.com", "emcd.io", "kryptex.network", "xmrig.com",
    "monerohash.com", "p2pool.io", "zpool.ca", "prohashing.com", "mining-dutch.nl", "woolypooly.com",
    "flypool.org", "sparkpool.com", "hiveon.net", "pool.binance.com",
    "xmr.pool.gntl.co.uk", "bohemianpool.com", "monero.crypto-pool.fr", "minexmr.fr",
)

# id -> (name, regex); flags: DOTALL | MULTILINE | SOM not needed
_PATTERNS: dict[int, tuple[str, bytes]] = {
    1: ("stratum", rb'"method"\s*:\s*"(?:mining\.(?:subscribe|authorize|submit|notify|set_difficulty|configure|'
                   rb'extranonce\.subscribe)|login|submit|getjob|keepalived)"'),
    2: ("prompt", rb"(?:^|\n)[a-z_][a-z0-9_-]{0,31}@[A-Za-z0-9.-]{1,64}:[^\n]{0,200}[#$] ?$"),
    3: ("prompt", rb"(?:^|\n)(?:ba|da|z|k)?sh-\d\.\d[#$] "),
    4: ("shell_output", rb"uid=\d+\([a-z_][a-z0-9_-]*\) gid=\d+\("),
    5: ("strong", rb"(?:bash: (?:cannot set terminal process group|no job control in this shell)|"
                  rb"sh: (?:can't access tty; job control turned off|\d+: [^\n]{1,40}: not found))"),
    6: ("command", rb"(?:^|\n)(?:id|whoami|uname -a|hostname|pwd|ls(?: -[a-z]+)?|cat /etc/(?:passwd|shadow|hosts)|"
                   rb"ps aux|ifconfig|ip a|env|python3? -c [^\n]*pty[^\n]*|export TERM=\S+|stty raw -echo)\r?\n"),
    7: ("root_prompt", rb"(?:^|\n)(?:root@[A-Za-z0-9.-]{1,64}:[^\n]{0,200}# ?|# )$"),
}


def _compile() -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    ids = list(_PATTERNS)
    db.compile(
        expressions=[_PATTERNS[i][1] for i in ids], ids=ids, elements=len(ids),
        flags=[hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_SINGLEMATCH] * len(ids),
    )
    return db


_DB: hyperscan.Database | None = None


def content_database() -> hyperscan.Database:
    global _DB
    if _DB is None:
        _DB = _compile()
    return _DB


def scan_content(data: bytes) -> set[str]:
    """Names of the content patterns found in `data`."""
    found: set[str] = set()

    def on_match(pid: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
        found.add(_PATTERNS[pid][0])

    content_database().scan(data, match_event_handler=on_match)
    return found


class ContentState:
    """What the content patterns saw on one flow so far, by direction."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: tuple[set[str], set[str]] = (set(), set())


def content_detections(state: ContentState, direction: int, data: bytes, text: Callable[[], bytes]) -> list[Detection]:
    """Feed one scanned window of one direction; return detections newly complete for the flow."""
    names = scan_content(data)
    if not names:
        return []
    state.seen[direction].update(names)
    client, server = state.seen
    out: list[Detection] = []
    if "stratum" in names:
        out.append(stratum_detection(parse_stratum_line(text())))
    # Reverse shell: the initiator sends shell prompts / command output, the other side commands.
    shell_marks = client & {"prompt", "shell_output", "strong", "root_prompt"}
    if "strong" in client or (shell_marks and "command" in server):
        what = ", ".join(sorted(shell_marks)) + (" + commands from the remote side" if "command" in server else "")
        out.append(Detection(
            rule="Reverse shell on the wire", severity=Severity.CRITICAL,
            evidence=f"interactive shell served by the connection's initiator ({what})",
            mitre=("T1059", "T1059.004", "T1571"), tags=("reverse_shell",),
        ))
    return out


def stratum_detection(fields: dict[str, str]) -> Detection:
    """Stratum seen on a flow, whatever its port: `fields` are its method and agent when known."""
    method = fields.get("stratum.method") or "mining call"
    agent = f" from {fields['stratum.agent']}" if fields.get("stratum.agent") else ""
    return Detection(rule="Stratum mining protocol", severity=Severity.CRITICAL,
                     evidence=f"Stratum JSON-RPC {method}{agent} on the wire", mitre=("T1496",),
                     fields=dict(fields), tags=("mining",))


_POOL_SET = frozenset(POOL_DOMAINS)


def pool_domain(name: str) -> str | None:
    """The known pool a DNS name / SNI belongs to (the name or one of its parent domains), or None."""
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels) - 1):
        suffix = ".".join(labels[i:])
        if suffix in _POOL_SET:
            return suffix
    return None


def pool_name_detection(kind: str, names: list[str]) -> Detection | None:
    """A detection when any of `names` (a DNS question and its CNAME chain, or an SNI) is a known pool."""
    for name in names:
        pool = pool_domain(name)
        if pool:
            chain = " -> ".join(names)
            return Detection(
                rule="Connection to a known mining pool", severity=Severity.HIGH,
                evidence=f"{kind} {chain} belongs to mining pool {pool}",
                mitre=("T1496",), fields={"net.pool": pool}, tags=("mining",),
            )
    return None


def tls_hello_detections(hello: Hello, client: bool, sslv2: bool) -> list[Detection]:
    """Old protocol versions offered (client) or negotiated (server)."""
    version = hello.max_version if client else (hello.versions[0] if hello.versions else hello.legacy_version)
    if sslv2:
        version = min(version, 0x0002)
    if version >= 0x0303:
        return []
    name = "SSLv2" if sslv2 else version_name(version)
    if client:
        return [Detection(rule="Old TLS version offered", severity=Severity.MEDIUM,
                          evidence=f"ClientHello offers at most {name}", mitre=("T1557",),
                          fields={"tls.version": name}, tags=("tls",))]
    return [Detection(rule="Old TLS version negotiated", severity=Severity.HIGH,
                      evidence=f"server chose {name}", mitre=("T1557",), fields={"tls.version": name},
                      tags=("tls",))]


def heartbleed_detection(hb: Heartbeat, client: bool, request_len: int) -> Detection | None:
    """A heartbeat request claiming more payload than it carries, or an oversized response."""
    if hb.encrypted:
        if not client and request_len and hb.record_len > request_len + 64:
            return Detection(rule="TLS Heartbleed response", severity=Severity.CRITICAL,
                             evidence=f"encrypted heartbeat response of {hb.record_len} bytes to a "
                                      f"{request_len}-byte request", mitre=("T1190", "T1040"),
                             tags=("tls", "CVE-2014-0160"))
        return None
    if hb.kind == 1 and hb.claimed + 3 + 16 > hb.record_len:
        return Detection(rule="TLS Heartbleed request", severity=Severity.CRITICAL,
                         evidence=f"heartbeat claims {hb.claimed} payload bytes in a {hb.record_len}-byte record",
                         mitre=("T1190",), fields={"tls.heartbeat_claimed": hb.claimed},
                         tags=("tls", "CVE-2014-0160"))
    if hb.kind == 2 and not client and request_len and hb.record_len > request_len + 64:
        return Detection(rule="TLS Heartbleed response", severity=Severity.CRITICAL,
                         evidence=f"heartbeat response of {hb.record_len} bytes to a {request_len}-byte request",
                         mitre=("T1190", "T1040"), tags=("tls", "CVE-2014-0160"))
    return None


def ssh_detection(banner: SshBanner, client: bool) -> Detection | None:
    """SSH protocol 1 in use (1.x), or a server still offering it (1.99)."""
    version = banner.proto_version
    if version.startswith("1.") and version != "1.99":
        return Detection(rule="SSH protocol version 1", severity=Severity.HIGH,
                         evidence=f"{'client' if client else 'server'} speaks SSH-{version} ({banner.software})",
                         mitre=("T1557", "T1021.004"), fields={"ssh.version": version}, tags=("ssh",))
    if version == "1.99" and not client:
        return Detection(rule="SSH protocol version 1", severity=Severity.MEDIUM,
                         evidence=f"server still offers SSH-1 (SSH-1.99, {banner.software})",
                         mitre=("T1557",), fields={"ssh.version": version}, tags=("ssh",))
    return None

