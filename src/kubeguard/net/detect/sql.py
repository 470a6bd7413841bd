"""SQL protocols (MySQL, PostgreSQL): injection inside queries on the wire, access-denied bursts.

A query on the wire is SQL by design, so the value model does not apply; `inspect_sql_query`
looks for the marks an injected fragment leaves in an otherwise normal query: tautologies after
a logic operator (``OR 1=1``, ``OR 'a'='a'``), UNION SELECT probing (NULL column lists,
information_schema, @@version), stacked destructive statements, a comment that truncates the
query's tail, time delays, and file / command primitives (LOAD_FILE, INTO OUTFILE, xp_cmdshell,
COPY ... FROM PROGRAM). `SqlAuthMonitor` counts failed logins per flow key.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict, deque
from dataclasses import dataclass

from kubeguard.model import Severity
from kubeguard.net.detect.mask import snippet
from kubeguard.net.detect.sqltok import (
    COMMENT,
    COMPARE,
    KEYWORD,
    LOGIC,
    NUMBER,
    SEMICOLON,
    STATEMENT,
    STRING,
    UNION,
    VARIABLE,
    tokenize,
)
from kubeguard.net.types import Detection

MAX_QUERY = 65536
_DANGEROUS = re.compile(
    r"(?i)\b(?:sleep|benchmark|pg_sleep|load_file|xp_cmdshell|sp_oacreate|lo_import|lo_export|"
    r"dbms_pipe\.receive_message|utl_http\.request|sys_exec|sys_eval)\s*\(|\bwaitfor\s+delay\b|"
    r"\binto\s+(?:out|dump)file\b|\bcopy\s+\S+\s+(?:from|to)\s+program\b"
)
_DESTRUCTIVE = frozenset({"drop", "shutdown", "truncate", "grant", "exec", "execute", "alter"})
SQLI_QUERY = ("SQL injection in query", Severity.HIGH, ("T1190",))


def _literal(tok: tuple[str, str]) -> str | None:
    if tok[0] == NUMBER:
        return tok[1].lower()
    if tok[0] == STRING:
        return "'" + tok[1]
    return None


def injection_marks(query: str) -> list[str]:
    """Why `query` looks injected (empty when it does not): one short reason per mark found."""
    text = query[:MAX_QUERY]
    toks = tokenize(text)
    reasons: list[str] = []
    for k, tok in enumerate(toks):
        if tok[0] == LOGIC and k + 1 < len(toks):
            rest = toks[k + 1 : k + 4]
            if len(rest) == 3 and rest[1][0] == COMPARE and rest[1][1] in ("=", "like", "<=>"):
                left, right = _literal(rest[0]), _literal(rest[2])
                if left is not None and left == right:
                    reasons.append(f"tautology {tok[1]} {rest[0][1]}{rest[1][1]}{rest[2][1]}")
            elif rest[0][0] == NUMBER and rest[0][1] not in ("0",) and (len(rest) == 1 or rest[1][0] == COMMENT):
                reasons.append(f"always-true {tok[1]} {rest[0][1]}")
        if tok[0] == UNION:
            tail = toks[k + 1 : k + 40]
            nulls = sum(t == (KEYWORD, "null") for t in tail)
            probes = [t[1] for t in tail if t[1] in ("information_schema", "@@version", "version", "user",
                                                     "database", "current_user", "pg_catalog", "sysobjects")]
            if nulls >= 2 or probes:
                reasons.append("union select probe" + (f" ({probes[0]})" if probes else f" ({nulls} NULL columns)"))
        if tok[0] == SEMICOLON and k + 1 < len(toks) and toks[k + 1][0] == STATEMENT and \
                toks[k + 1][1] in _DESTRUCTIVE and any(t[0] == STATEMENT for t in toks[:k]):
            reasons.append(f"stacked {toks[k + 1][1]}")
        if tok[0] == VARIABLE and tok[1].lower() in ("@@version", "@@datadir", "@@hostname"):
            reasons.append(f"server probe {tok[1]}")
    if toks and toks[-1][0] == COMMENT and len(toks) >= 2 and toks[-2][0] in (STRING, NUMBER, ")"):
        pos = text.rfind(toks[-1][1])
        comment = text[pos + 2 :].strip() if pos >= 0 else ""
        if comment and "\n" not in comment and not comment.endswith("*/"):
            reasons.append("comment truncates the query")
    match = _DANGEROUS.search(text)
    if match:
        reasons.append(f"dangerous primitive {match.group(0).strip()}")
    return list(dict.fromkeys(reasons))


def inspect_sql_query(query: str) -> list[Detection]:
    """Detections for one SQL query seen on a MySQL/PostgreSQL connection."""
    reasons = injection_marks(query)
    if not reasons:
        return []
    rule, severity, mitre = SQLI_QUERY
    return [Detection(rule, severity, f"{'; '.join(reasons)[:120]}: {snippet(query)}", mitre,
                      {"sql.query": snippet(query, 0, None, 200), "sql.reasons": reasons}, ("sql", "dpi"))]


@dataclass(slots=True)
class SqlAuthThresholds:
    """Access-denied burst thresholds (documented in docs/dpi-detect.md)."""

    failures: int = 10  # failed logins for one key within `window`
    window: float = 60.0
    cooldown: float = 300.0
    max_keys: int = 10000


class SqlAuthMonitor:
    """Counts authentication failures per flow key (e.g. client IP and server) in a sliding window."""

    def __init__(self, thresholds: SqlAuthThresholds | None = None) -> None:
        self.t = thresholds or SqlAuthThresholds()
        self.failures: OrderedDict[object, deque[float]] = OrderedDict()
        self.alerted: dict[object, float] = {}

    def observe(self, flow_key: object, failed: bool, ts: float) -> list[Detection]:
        """Record one login outcome; a Detection when failures for `flow_key` reach the threshold."""
        if not failed or not math.isfinite(ts):
            return []
        times = self.failures.get(flow_key)
        if times is None:
            times = self.failures[flow_key] = deque()
            while len(self.failures) > self.t.max_keys:
                old, _ = self.failures.popitem(last=False)
                self.alerted.pop(old, None)
        else:
            self.failures.move_to_end(flow_key)
        times.append(ts)
        while times and ts - times[0] > self.t.window:
            times.popleft()
        if len(times) < self.t.failures:
            return []
        last = self.alerted.get(flow_key)
        if last is not None and ts - last < self.t.cooldown:
            return []
        self.alerted[flow_key] = ts
        return [Detection("SQL access-denied burst", Severity.MEDIUM,
                          f"{len(times)} failed logins in {self.t.window:.0f}s from "
                          f"{snippet(str(flow_key), 0, None, 80)}",
                          ("T1110",), {"sql.failures": len(times)}, ("sql", "dpi"))]
