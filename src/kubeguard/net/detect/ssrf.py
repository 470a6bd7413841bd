"""Cloud instance-metadata addresses, in every spelling an SSRF payload uses to hide them.

`metadata_target(text)` finds the host part of a URL (or a bare host) and says whether it is a
metadata endpoint: 169.254.169.254 (AWS, GCP, Azure, OpenStack...), 169.254.170.2 (ECS task
credentials), 100.100.100.200 (Alibaba), fd00:ec2::254 (AWS IPv6), metadata.google.internal and
friends, written in decimal (2852039166), hex (0xa9fea9fe, 0xa9.0xfe...), octal (0251.0376...),
short forms (169.254.43518), IPv4-mapped / -compatible IPv6, and wildcard-DNS names that embed
the address (169.254.169.254.nip.io).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

METADATA_V4 = frozenset({0xA9FEA9FE, 0xA9FEAA02, 0x646464C8})  # 169.254.169.254, 169.254.170.2, 100.100.100.200
METADATA_V6 = frozenset({ipaddress.IPv6Address("fd00:ec2::254")})
METADATA_NAMES = frozenset({
    "metadata.google.internal", "metadata", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.com", "metadata.tencentyun.com", "metadata.platformequinix.com",
})
_URL_HOST = re.compile(r"(?i)(?:[a-z][a-z0-9+.-]{1,15}:)?//([^/?#\s\\]+)")
_WILDCARD_DNS = re.compile(r"(?i)^(.+?)[.-](?:nip\.io|xip\.io|sslip\.io|nip\.direct|localtest\.me)$")


def parse_ipv4(text: str) -> int | None:
    """An IPv4 address as inet_aton reads it (decimal, 0x hex, 0 octal, 1 to 4 parts), or None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or any(not p for p in parts):
        return None
    nums: list[int] = []
    for p in parts:
        low = p.lower()
        try:
            if low.startswith("0x"):
                nums.append(int(low[2:] or "0", 16))
            elif len(low) > 1 and low.startswith("0"):
                nums.append(int(low, 8))
            elif low.isdigit():
                nums.append(int(low))
            else:
                return None
        except ValueError:
            return None
    *head, last = nums
    if any(n > 255 for n in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return value << (8 * (4 - len(head))) | last


def _is_metadata_ip(host: str) -> bool:
    v4 = parse_ipv4(host)
    if v4 is not None:
        return v4 in METADATA_V4
    if ":" not in host:
        return False
    try:
        v6 = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return False
    if v6 in METADATA_V6:
        return True
    mapped = v6.ipv4_mapped
    if mapped is None and int(v6) >> 32 == 0:  # IPv4-compatible ::a.b.c.d
        mapped = ipaddress.IPv4Address(int(v6) & 0xFFFFFFFF)
    return mapped is not None and int(mapped) in METADATA_V4


@lru_cache(maxsize=4096)  # Host headers repeat: a cluster has few services
def is_metadata_host(host: str) -> bool:
    """True when `host` (no scheme; may carry userinfo, port, brackets) names a metadata endpoint."""
    host = host.strip().rsplit("@", 1)[-1].strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if not host:
        return False
    if host in METADATA_NAMES or _is_metadata_ip(host):
        return True
    wild = _WILDCARD_DNS.match(host)
    if wild:
        embedded = wild.group(1).replace("-", ".")
        return _is_metadata_ip(embedded.rsplit(".", 4)[-1] if embedded.count(".") > 3 else embedded) or any(
            _is_metadata_ip(".".join(embedded.split(".")[k : k + 4])) for k in range(max(1, embedded.count(".") - 2))
        )
    return False


def metadata_target(text: str) -> str | None:
    """The metadata host a value points at (a URL's host, or the whole value as a host), or None."""
    for match in _URL_HOST.finditer(text[:4096]):
        if is_metadata_host(match.group(1)):
            return match.group(1)
    candidate = text.strip()
    if len(candidate) <= 255 and " " not in candidate:
        head = re.split(r"[/?#]", candidate, maxsplit=1)[0]
        if head and is_metadata_host(head):
            return head
    return None
