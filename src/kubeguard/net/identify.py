"""Port-independent protocol identification from the first bytes each side sends.

`identify()` looks at the first payload bytes of the client (initiator) and server sides and
answers a protocol name from PROTOCOLS, "unknown" once it is sure it knows none, or None when
more bytes are needed. Ports are never consulted: a miner on port 443 or SSH on 8080 is named by
what it says. Every check reads lengths from the bytes themselves and verifies they fit.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

PROTOCOLS = (
    "http", "http2", "grpc", "tls", "ssh", "dns", "mysql", "postgresql", "redis", "mongodb", "kafka",
    "memcached", "cassandra", "elasticsearch", "etcd", "zookeeper", "amqp", "mqtt", "nats", "smtp", "imap",
    "pop3", "ftp", "ldap", "sip", "ntp", "dhcp", "syslog", "snmp", "radius", "tftp", "rtsp", "telnet", "rdp",
    "smb", "vnc", "socks", "stratum",
)

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ",
                b"TRACE ", b"PROPFIND ", b"MKCOL ", b"COPY ", b"MOVE ", b"LOCK ", b"UNLOCK ", b"PROPPATCH ")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENOUGH = 4096  # bytes per side after which an undecided flow is "unknown"

_I32 = struct.Struct("!i").unpack_from
_I32LE = struct.Struct("<i").unpack_from
_U16 = struct.Struct("!H").unpack_from

_ES_URI = re.compile(rb"^/(?:[\w.*,-]+/)?_(?:search|cat|bulk|cluster|nodes|doc|mapping|count|aliases|msearch|"
                     rb"mget|update|create|settings|stats|security|xpack|license|ingest|snapshot|tasks)\b")
_ETCD_URI = re.compile(rb"^/(?:v2/(?:keys|members|stats|machines)|v3(?:beta|alpha)?/"
                       rb"(?:kv|lease|watch|auth|maintenance|cluster)/)")
_STRATUM = re.compile(rb'"method"\s*:\s*"(?:mining\.[a-z_.]+|login|submit|getjob|keepalived)"')
_STRATUM_REPLY = re.compile(rb'"(?:job|jsonrpc)"\s*:.*"(?:blob|target|seed_hash|extranonce)', re.S)
_SYSLOG = re.compile(rb"^(?:\d{1,5} )?<(?:1[0-8]\d|19[01]|\d{1,2})>(?:1 \d{4}-|[A-Z][a-z]{2} [ \d]\d \d\d:|\d{4}-)")
_MEMCACHED = re.compile(rb"^(?:(?:get|gets|gat|gats|set|add|replace|append|prepend|cas|delete|incr|decr|touch|"
                        rb"mg|ms|md|ma) [^\r\n]{1,250}|stats(?: [a-z]+)?|version|flush_all(?: \d+)?|verbosity \d|"
                        rb"mn|quit)\r\n")
_ZK_WORDS = {b"ruok", b"stat", b"srvr", b"mntr", b"conf", b"cons", b"dump", b"envi", b"wchs", b"wchc", b"wchp",
             b"dirs", b"isro", b"gtmk", b"stmk", b"crst", b"srst"}
_SMTP_CMD = re.compile(rb"^(?:EHLO|HELO|MAIL FROM:|RCPT TO:|STARTTLS)", re.I)
_FTP_CMD = re.compile(rb"^(?:USER |SYST\r|FEAT\r|AUTH (?:TLS|SSL)|OPTS |PASV\r|EPSV)", re.I)
_POP3_CMD = re.compile(rb"^(?:USER |CAPA\r|APOP |STLS\r|AUTH |UIDL|STAT\r)", re.I)
_IMAP_CMD = re.compile(rb"^[A-Za-z0-9.]{1,12} (?:CAPABILITY|LOGIN|AUTHENTICATE|STARTTLS|SELECT|LIST|ID|NOOP)\b",
                       re.I)
_REDIS_INLINE = re.compile(rb"^(?:PING|AUTH [^\r\n]+|HELLO(?: \d)?|INFO(?: \w+)?|QUIT|CLIENT [^\r\n]+)\r\n", re.I)
_SIP = re.compile(rb"^(?:(?:INVITE|REGISTER|OPTIONS|ACK|BYE|CANCEL|SUBSCRIBE|NOTIFY|MESSAGE|INFO|PRACK|UPDATE|"
                  rb"REFER|PUBLISH) sips?:\S+ SIP/2\.0\r\n|SIP/2\.0 \d{3} )")
_RTSP = re.compile(rb"^(?:(?:OPTIONS|DESCRIBE|SETUP|PLAY|PAUSE|TEARDOWN|ANNOUNCE|RECORD|GET_PARAMETER|"
                   rb"SET_PARAMETER) (?:rtsps?://\S*|\*) RTSP/1\.0\r\n|RTSP/1\.0 \d{3} )")


def identify(l4: str, client: bytes, server: bytes, final: bool = False) -> str | None:
    """Name the protocol from the first bytes of each side; None = need more bytes (unless `final`)."""
    if l4 == "udp":
        return _udp(client) or _udp(server) or ("unknown" if client or server else None)
    if l4 != "tcp":
        return "unknown"
    found = _tcp(client, server, final)
    if found is None and (final or len(client) >= ENOUGH or len(server) >= ENOUGH):
        return "unknown"
    return found


def _tcp(c: bytes, s: bytes, final: bool) -> str | None:
    if c.startswith(H2_PREFACE) or (len(c) < len(H2_PREFACE) and c and H2_PREFACE.startswith(c)):
        if len(c) < len(H2_PREFACE):
            return None if not final else "unknown"
        return _http2_kind(c, final)
    if c.startswith(HTTP_METHODS) or s.startswith(b"HTTP/1."):
        if _RTSP.match(c) or s.startswith(b"RTSP/1.0"):
            return "rtsp"
        return _http_kind(c, s, final)
    for proto, check in _CLIENT_FIRST:
        if c and check(c):
            return proto
    for proto, check in _SERVER_FIRST:
        if s and check(s):
            return _refine_banner(proto, c, s, final)
    if c and _text_prefix_of_method(c):
        return None  # maybe an HTTP/RTSP/SIP method still arriving byte by byte
    if not c and not s:
        return None
    return None


def _text_prefix_of_method(c: bytes) -> bool:
    return len(c) < 10 and any(m.startswith(c) for m in HTTP_METHODS)


def _http_kind(c: bytes, s: bytes, final: bool) -> str | None:
    line_end = c.find(b"\r\n")
    if line_end < 0 and not s and not final and len(c) < ENOUGH:
        return None
    parts = c[: line_end if line_end >= 0 else 512].split(b" ")
    uri = parts[1] if len(parts) > 1 else b""
    if _ETCD_URI.match(uri) or b"\r\nx-etcd-cluster-id:" in s.lower():
        return "etcd"
    if _ES_URI.match(uri) or b"x-elastic-product: elasticsearch" in s.lower() or b"You Know, for Search" in s:
        return "elasticsearch"
    if b"\r\nupgrade: h2c" in c.lower():
        return "http2"
    return "http"


def _http2_kind(c: bytes, final: bool) -> str | None:
    """grpc / etcd / http2 from the first HEADERS frame (HPACK-decoded) after the preface."""
    headers = h2_first_headers(c)
    if headers is None:
        return "http2" if final or len(c) >= ENOUGH else None
    path = headers.get(":path", "")
    if path.startswith(("/etcdserverpb.", "/v3electionpb.", "/v3lockpb.")):
        return "etcd"
    if headers.get("content-type", "").startswith("application/grpc"):
        return "grpc"
    return "http2"


def h2_first_headers(c: bytes) -> dict[str, str] | None:
    """Headers of the first HEADERS frame after the client preface; None if it is not there yet."""
    pos = len(H2_PREFACE)
    while pos + 9 <= len(c):
        length = int.from_bytes(c[pos: pos + 3], "big")
        ftype, flags = c[pos + 3], c[pos + 4]
        block = c[pos + 9: pos + 9 + length]
        if len(block) < length:
            return None
        if ftype == 0x1:  # HEADERS
            if flags & 0x08 and block:  # PADDED
                block = block[1: len(block) - block[0]]
            if flags & 0x20:  # PRIORITY
                block = block[5:]
            return h2_decode_headers(block)
        pos += 9 + length
    return None


def h2_decode_headers(block: bytes) -> dict[str, str]:
    """Decode one HPACK header block with a fresh decoder; {} when it cannot be decoded."""
    try:
        import hpack  # lazy: only HTTP/2 flows pay for it

        decoder = hpack.Decoder()
        decoder.max_allowed_table_size = 4096
        return {str(k): str(v) for k, v in decoder.decode(block, raw=False)}
    except Exception:  # hpack raises several unrelated types on hostile input
        return {}


def _refine_banner(proto: str, c: bytes, s: bytes, final: bool) -> str | None:
    """Server banners shared by several protocols ("220 ..."): let the banner or client decide."""
    if proto != "smtp/ftp":
        return proto
    low = s[:512].lower()
    if b"ftp" in low:
        return "ftp"
    if b"smtp" in low or b"mail" in low or b"postfix" in low or b"exim" in low:
        return "smtp"
    if _SMTP_CMD.match(c):
        return "smtp"
    if _FTP_CMD.match(c):
        return "ftp"
    return "smtp" if final else None


def _is_tls(c: bytes) -> bool:
    if len(c) >= 3 and c[0] == 0x16 and c[1] == 3 and c[2] <= 4:
        return len(c) < 6 or c[5] in (1, 2)
    # SSLv2-framed ClientHello: 2-byte length with the high bit, msg type 1, version 2.0 / 3.x
    return len(c) >= 5 and bool(c[0] & 0x80) and c[2] == 1 and c[3] in (0, 3) and c[4] <= 4


def _is_postgres(c: bytes) -> bool:
    if len(c) < 8:
        return False
    length: int = _I32(c, 0)[0]
    code: int = _I32(c, 4)[0]
    if code in (80877103, 80877104):
        return length == 8
    if code == 80877102:
        return length == 16
    return code == 196608 and 9 <= length <= 10000 and (len(c) < length or c[length - 1] == 0)


def _is_redis(c: bytes) -> bool:
    if c[:1] == b"*" and re.match(rb"^\*\d{1,6}\r\n\$\d{1,9}\r\n", c):
        return True
    return bool(_REDIS_INLINE.match(c))


def _is_mongodb(c: bytes) -> bool:
    if len(c) < 16:
        return False
    length, _req, resp, opcode = struct.unpack_from("<iiii", c, 0)
    return 16 <= length <= 48_000_000 and resp == 0 and opcode in (2013, 2004, 2012, 2010)


def _is_kafka(c: bytes) -> bool:
    if len(c) < 14:
        return False
    size = _I32(c, 0)[0]
    api_key, api_version = struct.unpack_from("!hh", c, 4)
    id_len = struct.unpack_from("!h", c, 12)[0]
    if not (10 <= size <= 100_000_000 and 0 <= api_key <= 80 and 0 <= api_version <= 20):
        return False
    if id_len == -1:
        return True
    ident = c[14: 14 + id_len]
    return 0 <= id_len <= size - 10 and (len(ident) < id_len or all(32 <= b < 127 for b in ident))


def _is_memcached(c: bytes) -> bool:
    if c[0] == 0x80 and len(c) >= 24:  # binary protocol request
        key_len = _U16(c, 2)[0]
        extras, body = c[4], _I32(c, 8)[0]
        return c[1] <= 0x4F and c[5] == 0 and 0 <= body < 1 << 20 and key_len + extras <= body
    return bool(_MEMCACHED.match(c))


def _is_cassandra(c: bytes) -> bool:
    if len(c) < 9:
        return False
    version, flags, opcode = c[0], c[1], c[4]
    length = _I32(c, 5)[0]
    return 1 <= version <= 5 and flags <= 0x1F and opcode in (0x01, 0x05) and 0 <= length <= 65536 and (
        opcode == 0x01 or length == 0)


def _is_zookeeper(c: bytes) -> bool:
    if c[:4] in _ZK_WORDS and len(c) <= 6:
        return True
    if len(c) < 32:
        return False
    length, proto_version = _I32(c, 0)[0], _I32(c, 4)[0]
    timeout, pw_len = _I32(c, 16)[0], _I32(c, 28)[0]
    return length in (44, 45, 48, 49) and proto_version == 0 and 0 < timeout <= 3_600_000 and pw_len == 16


def _is_mqtt(c: bytes) -> bool:
    if not c or c[0] != 0x10:
        return False
    pos = 1
    for _ in range(4):  # variable-length remaining length
        if pos >= len(c):
            return False
        more = c[pos] & 0x80
        pos += 1
        if not more:
            break
    return c[pos: pos + 6] == b"\x00\x04MQTT" or c[pos: pos + 8] == b"\x00\x06MQIsdp"


def _is_ldap(c: bytes) -> bool:
    if len(c) < 7 or c[0] != 0x30:
        return False
    pos = 2
    if c[1] & 0x80:
        n = c[1] & 0x7F
        if not 1 <= n <= 4:
            return False
        pos = 2 + n
    if c[pos: pos + 1] != b"\x02" or pos + 2 >= len(c):
        return False
    id_len = c[pos + 1]
    if not 1 <= id_len <= 4:
        return False
    op = c[pos + 2 + id_len: pos + 3 + id_len]
    return bool(op) and op[0] in (0x60, 0x42, 0x63, 0x66, 0x68, 0x6A, 0x6C, 0x6E, 0x50, 0x77)


def _is_rdp(c: bytes) -> bool:
    return len(c) >= 11 and c[:2] == b"\x03\x00" and _U16(c, 2)[0] >= 11 and c[5] == 0xE0


def _is_smb(c: bytes) -> bool:
    return len(c) >= 8 and c[0] == 0 and c[4:8] in (b"\xffSMB", b"\xfeSMB", b"\xfdSMB")


def _is_socks(c: bytes) -> bool:
    if c[0] == 5 and len(c) >= 3:
        n = c[1]
        return 1 <= n <= 10 and len(c) == 2 + n and all(m in (0, 1, 2, 3) or 0x80 <= m <= 0xFE for m in c[2:])
    if c[0] == 4 and len(c) >= 9:
        return c[1] in (1, 2) and c.endswith(b"\x00") and c.find(b"\x00", 8) >= 8
    return False


def _is_telnet(c: bytes) -> bool:
    return len(c) >= 3 and c[0] == 0xFF and 0xFB <= c[1] <= 0xFE


def _is_stratum(c: bytes) -> bool:
    return c[:1] == b"{" and bool(_STRATUM.search(c[:2048]))


def _is_dns_tcp(c: bytes) -> bool:
    if len(c) < 14:
        return False
    length = _U16(c, 0)[0]
    return 12 <= length <= 65535 and looks_like_dns(c[2: 2 + length], partial=len(c) < length + 2)


def _is_mysql_greeting(s: bytes) -> bool:
    if len(s) < 10:
        return False
    length = int.from_bytes(s[:3], "little")
    if s[3] != 0 or s[4] not in (9, 10) or not 20 <= length <= 1024:
        return False
    end = s.find(b"\x00", 5)
    return 5 < end < 5 + 60 and all(32 <= b < 127 for b in s[5:end])


def _is_smtp_ftp(s: bytes) -> bool:
    return s[:4] in (b"220 ", b"220-")


_CLIENT_FIRST: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("tls", _is_tls),
    ("ssh", lambda c: c.startswith(b"SSH-")),
    ("stratum", _is_stratum),
    ("sip", lambda c: bool(_SIP.match(c))),
    ("postgresql", _is_postgres),
    ("amqp", lambda c: c.startswith(b"AMQP") and len(c) >= 8),
    ("mqtt", _is_mqtt),
    ("nats", lambda c: c.startswith((b"CONNECT {", b"INFO {"))),
    ("smb", _is_smb),
    ("rdp", _is_rdp),
    ("vnc", lambda c: c.startswith(b"RFB 00")),
    ("redis", _is_redis),
    ("memcached", _is_memcached),
    ("mongodb", _is_mongodb),
    ("cassandra", _is_cassandra),
    ("zookeeper", _is_zookeeper),
    ("ldap", _is_ldap),
    ("syslog", lambda c: bool(_SYSLOG.match(c))),
    ("smtp", lambda c: bool(_SMTP_CMD.match(c))),
    ("imap", lambda c: bool(_IMAP_CMD.match(c))),
    ("socks", _is_socks),
    ("telnet", _is_telnet),
    ("dns", _is_dns_tcp),
    ("kafka", _is_kafka),
)

_SERVER_FIRST: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("ssh", lambda s: s.startswith(b"SSH-")),
    ("mysql", _is_mysql_greeting),
    ("vnc", lambda s: s.startswith(b"RFB 00")),
    ("nats", lambda s: s.startswith(b"INFO {")),
    ("smtp/ftp", _is_smtp_ftp),
    ("pop3", lambda s: s.startswith(b"+OK")),
    ("imap", lambda s: s.startswith(b"* OK") or s.startswith(b"* PREAUTH")),
    ("telnet", _is_telnet),
    ("stratum", lambda s: s[:1] == b"{" and bool(_STRATUM_REPLY.search(s[:2048]))),
)


# ---- UDP -------------------------------------------------------------------------------------

def _udp(p: bytes) -> str | None:
    if not p:
        return None
    if len(p) >= 240 and p[0] in (1, 2) and p[1] == 1 and p[2] == 6 and p[236:240] == b"\x63\x82\x53\x63":
        return "dhcp"
    if _SIP.match(p):
        return "sip"
    if _SYSLOG.match(p):
        return "syslog"
    if _is_tftp(p):
        return "tftp"
    if _is_snmp(p):
        return "snmp"
    if _is_radius(p):
        return "radius"
    if looks_like_dns(p):
        return "dns"
    if _is_ntp(p):
        return "ntp"
    if _is_stratum(p):
        return "stratum"
    return None


def _is_tftp(p: bytes) -> bool:
    if len(p) < 4 or p[0] != 0 or p[1] not in (1, 2):
        return False
    parts = p[2:].split(b"\x00")
    return len(parts) >= 3 and bool(parts[0]) and parts[1].lower() in (b"netascii", b"octet", b"mail")


def _is_snmp(p: bytes) -> bool:
    if len(p) < 10 or p[0] != 0x30:
        return False
    pos = 2 if not p[1] & 0x80 else 2 + (p[1] & 0x7F)
    if p[pos: pos + 2] != b"\x02\x01" or pos + 3 >= len(p):
        return False
    version = p[pos + 2]
    if version in (0, 1):
        return p[pos + 3] == 0x04  # community string follows
    return version == 3 and p[pos + 3] == 0x30


def _is_radius(p: bytes) -> bool:
    if len(p) < 20 or p[0] not in (1, 2, 3, 4, 5, 11, 12, 13, 40, 41, 42, 43, 44, 45):
        return False
    if _U16(p, 2)[0] != len(p):
        return False
    pos = 20
    while pos < len(p):  # attributes must tile the rest exactly
        if pos + 2 > len(p) or p[pos + 1] < 2:
            return False
        pos += p[pos + 1]
    return pos == len(p)


def _is_ntp(p: bytes) -> bool:
    if len(p) not in (48, 52, 60, 68, 72):
        return False
    version, mode = (p[0] >> 3) & 7, p[0] & 7
    return 1 <= version <= 4 and 1 <= mode <= 5 and p[1] <= 16


def looks_like_dns(p: bytes, partial: bool = False) -> bool:
    """A DNS message: sane header and a parseable first question."""
    if len(p) < 17:
        return False
    flags = _U16(p, 2)[0]
    qd, an, ns, ar = struct.unpack_from("!HHHH", p, 4)
    opcode = (flags >> 11) & 0xF
    if qd != 1 or opcode not in (0, 1, 2, 4, 5) or an > 200 or ns > 200 or ar > 200:
        return False
    if not flags & 0x8000 and (an or ns or ar > 2):
        return False
    pos = 12
    for _ in range(128):
        if pos >= len(p):
            return partial
        n = p[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0:
            return False  # the first question's name is never compressed
        label = p[pos + 1: pos + 1 + n]
        if len(label) < n and not partial:
            return False
        pos += 1 + n
    else:
        return False
    if pos + 4 > len(p):
        return partial
    qclass = _U16(p, pos + 2)[0]
    return qclass in (1, 3, 4, 254, 255) or qclass & 0x7FFF == 1
