"""IP fragment reassembly (IPv4 and IPv6), bounded in memory and time.

Overlap policy: first wins. Bytes already received for an offset range are kept; a later
fragment that overlaps them contributes only the bytes it adds (Suricata's "first" policy).
Limits: a datagram is dropped when it would exceed 65,535 bytes, when it stays incomplete for
`timeout` seconds, or when more than `max_pending` datagrams are in reassembly (oldest dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DATAGRAM = 65_535


@dataclass(slots=True)
class _Pending:
    first_ts: float
    pieces: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, data), accepted bytes only
    total: int = -1  # payload length once the last fragment (MF=0) arrived
    size: int = 0


class Defragmenter:
    """Collects fragments by (src, dst, id, proto) and returns the payload once complete."""

    def __init__(self, timeout: float = 30.0, max_pending: int = 4096) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[tuple[bytes, bytes, int, int], _Pending] = {}
        self.dropped = 0

    def add(self, key: tuple[bytes, bytes, int, int], offset: int, more: bool, data: bytes,
            ts: float) -> bytes | None:
        """Add one fragment; return the whole payload when this fragment completes it."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._expire(ts)
                if len(self._pending) >= self.max_pending:
                    del self._pending[next(iter(self._pending))]
                    self.dropped += 1
            entry = self._pending[key] = _Pending(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM or (entry.total >= 0 and end > entry.total):
            del self._pending[key]
            self.dropped += 1
            return None
        if not more:
            if entry.total >= 0 and entry.total != end:
                return None  # a second, different "last" fragment: keep the first
            entry.total = end
        for start, stop in _uncovered(entry.pieces, offset, end):
            entry.pieces.append((start, data[start - offset: stop - offset]))
            entry.size += stop - start
        if entry.total >= 0 and entry.size >= entry.total:
            del self._pending[key]
            entry.pieces.sort(key=lambda p: p[0])
            out = b"".join(p[1] for p in entry.pieces)
            return out if len(out) == entry.total else None
        return None

    def _expire(self, now: float) -> None:
        horizon = now - self.timeout
        for key in [k for k, v in self._pending.items() if v.first_ts < horizon]:
            del self._pending[key]
            self.dropped += 1

    def expire(self, now: float) -> None:
        """Drop datagrams that stayed incomplete longer than the timeout."""
        self._expire(now)

    def __len__(self) -> int:
        return len(self._pending)


def _uncovered(pieces: list[tuple[int, bytes]], start: int, stop: int) -> list[tuple[int, int]]:
    """Sub-ranges of [start, stop) not yet covered by `pieces` (first-wins overlap handling)."""
    gaps = [(start, stop)]
    for pstart, pdata in pieces:
        pstop = pstart + len(pdata)
        nxt = []
        for gstart, gstop in gaps:
            if pstop <= gstart or pstart >= gstop:
                nxt.append((gstart, gstop))
                continue
            if gstart < pstart:
                nxt.append((gstart, pstart))
            if pstop < gstop:
                nxt.append((pstop, gstop))
        gaps = nxt
        if not gaps:
            break
    return gaps
