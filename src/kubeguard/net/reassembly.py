"""TCP reassembly of one direction of a connection, up to a stream depth.

Policy (documented in docs/dpi.md):
- Overlaps and retransmissions: first wins. Bytes already accepted for a sequence range, delivered
  or still queued out of order, are never replaced by a later segment carrying different bytes
  (Suricata's "first" policy). A retransmission therefore cannot rewrite what was inspected.
- Out of order: segments ahead of the next expected byte are queued (at most `max_queued` bytes
  per direction, and at most `Budget.limit` bytes across all streams) and delivered as soon as
  the hole before them is filled.
- Gaps: when a queue or the global budget is full, or the direction ends (FIN/RST/flow end) with a hole, the hole is
  skipped: `gap` is set, delivery goes on after it, and the consumer is told (`on_gap`), since an
  L7 parser cannot resynchronise across missing bytes.
- Depth: only the first `depth` bytes of the direction are delivered (Suricata's stream depth,
  1 MiB by default here); later bytes are only counted, which makes bulk transfers cheap.
"""

from __future__ import annotations

from collections.abc import Callable

SEQ_MOD = 1 << 32
HALF = 1 << 31


class Budget:
    """Out-of-order bytes queued across all streams, against a global limit (memory bound)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = 256 << 20) -> None:
        self.limit = limit
        self.used = 0


class TcpStream:
    """One direction of a TCP connection: feeds in-order bytes to `deliver` until `depth`."""

    __slots__ = ("base", "budget", "deliver", "depth", "done", "gap", "max_queued", "next_rel", "on_gap", "queue",
                 "queued")

    def __init__(self, deliver: Callable[[bytes], None], depth: int = 1 << 20, max_queued: int = 256 * 1024,
                 on_gap: Callable[[], None] | None = None, budget: Budget | None = None) -> None:
        self.deliver = deliver
        self.budget = budget or Budget()
        self.on_gap = on_gap
        self.depth = depth
        self.max_queued = max_queued
        self.base = -1  # sequence number of relative offset 0 (ISN + 1, or first data seen)
        self.next_rel = 0  # next relative offset to deliver
        self.queue: dict[int, bytes] = {}  # relative offset -> bytes not yet deliverable (non-overlapping)
        self.queued = 0
        self.done = False  # depth reached or consumer asked to stop: later bytes are only counted
        self.gap = False

    def syn(self, seq: int) -> None:
        """The SYN (or SYN-ACK) of this direction: data starts at seq + 1."""
        if self.base < 0:
            self.base = (seq + 1) % SEQ_MOD

    def segment(self, seq: int, data: bytes) -> None:
        """Add one segment's payload (seq of its first byte)."""
        if self.done or not data:
            return
        if self.base < 0:
            self.base = seq
        rel = (seq - self.base) % SEQ_MOD
        if rel >= HALF:  # before the start (old retransmission): keep the part at or after offset 0
            back = SEQ_MOD - rel
            if back >= len(data):
                return
            data = data[back:]
            rel = 0
        if rel >= self.depth:
            return
        if rel + len(data) > self.depth:
            data = data[: self.depth - rel]
        nxt = self.next_rel
        if rel <= nxt:
            if rel + len(data) <= nxt:
                return  # pure retransmission of delivered bytes: first wins
            self._emit(data[nxt - rel:])
            if self.queue:
                self._drain()
        else:
            self._enqueue(rel, data)

    def _emit(self, data: bytes) -> None:
        self.next_rel += len(data)
        self.deliver(data)
        if self.next_rel >= self.depth:
            self.finish_depth()

    def _enqueue(self, rel: int, data: bytes) -> None:
        end = rel + len(data)
        pieces = [(rel, end)]
        for qrel, qdata in self.queue.items():  # first wins against queued bytes too
            qend = qrel + len(qdata)
            nxt = []
            for s, e in pieces:
                if qend <= s or qrel >= e:
                    nxt.append((s, e))
                    continue
                if s < qrel:
                    nxt.append((s, qrel))
                if qend < e:
                    nxt.append((qend, e))
            pieces = nxt
            if not pieces:
                return
        for s, e in pieces:
            self.queue[s] = data[s - rel: e - rel]
            self.queued += e - s
            self.budget.used += e - s
        if self.queued > self.max_queued or self.budget.used > self.budget.limit:
            self.skip_gap()

    def _drain(self) -> None:
        while self.queue and not self.done:
            progressed = False
            for qrel in sorted(self.queue):
                if qrel > self.next_rel:
                    break
                qdata = self.queue.pop(qrel)
                self.queued -= len(qdata)
                self.budget.used -= len(qdata)
                if qrel + len(qdata) > self.next_rel:
                    self._emit(qdata[self.next_rel - qrel:])
                    progressed = True
                    if self.done:
                        return
            if not progressed:
                return

    def skip_gap(self) -> None:
        """Give up on the hole before the first queued segment and deliver from there on."""
        if not self.queue or self.done:
            return
        first = min(self.queue)
        if first > self.next_rel:
            self.gap = True
            if self.on_gap is not None:
                self.on_gap()
            self.next_rel = first
        self._drain()

    def close(self) -> None:
        """The direction ended (FIN, RST or flow end): flush what is queued, skipping holes."""
        while self.queue and not self.done:
            self.skip_gap()

    def finish_depth(self) -> None:
        """Stop delivering: depth reached, or the consumer has seen all it needs."""
        self.done = True
        self.queue.clear()
        self.budget.used -= self.queued
        self.queued = 0
