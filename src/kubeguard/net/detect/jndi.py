"""Log4Shell: undo Log4j lookup obfuscation and find the JNDI lookup underneath.

Attackers hide ``${jndi:ldap://...}`` behind nested lookups that Log4j itself resolves:
``${${lower:j}ndi:...}``, ``${${::-j}${::-n}di:...}``, ``${${env:NOPE:-j}ndi:...}``,
``${${upper:J}NDI:...}``, ``${${date:'j'}ndi:...}``. `deobfuscate` resolves the innermost lookups
the way Log4j would (default values, lower/upper, date literals) a bounded number of times.
"""

from __future__ import annotations

import re

MAX_PASSES = 16  # nesting levels resolved; deeper nesting is itself reported
_INNER = re.compile(r"\$\{((?:[^${}]|\$(?!\{))*)\}")  # a '$' not opening a lookup may be text: `${::-x$}`
_JNDI = re.compile(r"(?i)\$\{\s*jndi\s*:\s*([a-z]{2,10})\s*:\s*/{0,2}([^}\s]{0,120})")
_JNDI_PROTOCOLS = frozenset({"ldap", "ldaps", "rmi", "dns", "iiop", "corba", "nds", "nis", "http", "https", "jms"})


def _resolve(match: re.Match[str]) -> str:
    body = match.group(1)
    low = body.lower()
    if ":-" in body:  # ${anything:-default} and ${::-x}: Log4j falls back to the default
        return body.split(":-", 1)[1]
    for prefix, fn in (("lower:", str.lower), ("upper:", str.upper)):
        if low.startswith(prefix):
            return fn(body[len(prefix) :])
    if low.startswith("date:"):
        return body[5:].strip("'\"")
    if low.startswith("jndi:"):
        return "\x00JNDI\x01" + body[5:] + "\x02"  # keep it, but let outer lookups resolve
    return match.group(0).replace("${", "\x03").replace("}", "\x04")  # unknown lookup: leave it alone


def deobfuscate(text: str) -> str:
    """`text` with nested Log4j lookups resolved (bounded passes); JNDI lookups kept as ``${jndi:...}``."""
    cur = text[:8192]
    for _ in range(MAX_PASSES):
        nxt = _INNER.sub(_resolve, cur)
        if nxt == cur:
            break
        cur = nxt
    return cur.replace("\x00JNDI\x01", "${jndi:").replace("\x02", "}").replace("\x03", "${").replace("\x04", "}")


def jndi_lookup(text: str) -> str | None:
    """The deobfuscated ``${jndi:proto://...}`` lookup in `text`, or None."""
    if "${" not in text:
        return None
    plain = deobfuscate(text)
    match = _JNDI.search(plain)
    if match and match.group(1).lower() in _JNDI_PROTOCOLS:
        return match.group(0)
    return None
