"""Stratum (mining pool JSON-RPC, one JSON object per line): method and client agent of each message.

Pool passwords and wallet logins are never kept: only `stratum.method` and `stratum.agent`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

MAX_LINE = 16 * 1024
MAX_MESSAGES = 8
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z_.]{1,40})"')


def parse_line(line: bytes) -> dict[str, str]:
    """Method and agent of one message (a regex fallback when the JSON is cut or broken)."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        msg = None
    if not isinstance(msg, dict):
        m = _METHOD.search(line)
        return {"stratum.method": m.group(1).decode()} if m else {}
    out = {"stratum.method": str(msg["method"])[:40]} if isinstance(msg.get("method"), str) else {}
    params = msg.get("params")
    if isinstance(params, dict) and params.get("agent"):
        out["stratum.agent"] = str(params["agent"])[:80]
    elif isinstance(params, list) and out.get("stratum.method") == "mining.subscribe" and params:
        out["stratum.agent"] = str(params[0])[:80]
    return out


class StratumStream:
    """One direction of a Stratum connection: `on_message(fields)` per complete line, a few lines deep."""

    def __init__(self, on_message: Callable[[dict[str, str]], None]) -> None:
        self.on_message = on_message
        self.failed = False
        self.done = False
        self._buf = b""
        self._count = 0

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self._buf += data
        while b"\n" in self._buf and not self.done:
            line, self._buf = self._buf.split(b"\n", 1)
            self._message(line)
        if len(self._buf) > MAX_LINE:
            self._message(self._buf[:MAX_LINE])
            self.done = True

    def _message(self, line: bytes) -> None:
        if line.strip():
            self._count += 1
            self.on_message(parse_line(line))
            self.done = self._count >= MAX_MESSAGES

    def close(self) -> None:
        if self._buf.strip() and not self.done:
            self._message(self._buf)
        self._buf = b""
