"""The NFQUEUE reader: packets from the kernel, verdicts from `Firewall`, marks for our iptables chains.

Every verdict is NF_REPEAT with our mark bits set (see `iptables`): the packet re-enters FORWARD and
our chain turns the bits into a connmark (bypass / block) and a final RETURN or DROP. Packets that
pass uninspected because the queue was full (`fail_open`) or because no reader was bound
(`--queue-bypass`) are not counted by the kernel; `BypassCounter` counts them as the difference
between the NFQUEUE rule's packet counter and the packets this reader received, and raises an alert
for every interval in which some passed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import fnfqueue

from kubeguard.errors import KubeguardError
from kubeguard.model import Alert
from kubeguard.response.firewall import Firewall, Verdict, bypass_alert
from kubeguard.response.iptables import Chains, Marks

log = logging.getLogger(__name__)

QUEUE_MAXLEN = 8192
RCVBUF = 16 << 20  # netlink receive buffer: bursts wait here instead of overflowing
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
PROC_QUEUES = Path("/proc/net/netfilter/nfnetlink_queue")


class QueueError(KubeguardError):
    """The queue could not be bound (not root, queue taken by another program, no nfnetlink_queue)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=1)  # the run cannot start (or stop cleanly)


def waiting_in_queue(queue_num: int) -> int:
    """Packets the kernel holds in `queue_num` waiting for a verdict (0 when unknown)."""
    try:
        for line in PROC_QUEUES.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == str(queue_num):
                return int(fields[2])
    except (OSError, ValueError):
        pass
    return 0


def _tune_socket(conn: fnfqueue.Connection) -> None:
    """A large receive buffer, and no ENOBUFS errors: a message that does not fit is failed open (or
    dropped with --fail-closed) by the kernel and counted by `BypassCounter`, not raised mid-read."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12, fileno=os.dup(conn._conn.fd))
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (CAP_NET_ADMIN)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    except OSError as exc:
        log.warning("NFQUEUE socket not tuned: %s", exc)
    finally:
        sock.close()


class QueueReader:
    """Binds one NFQUEUE and answers every packet with the firewall's verdict."""

    def __init__(self, firewall: Firewall, queue_num: int, marks: Marks, fail_closed: bool = False) -> None:
        self.firewall = firewall
        self.queue_num = queue_num
        self.marks = marks
        self.received = 0
        self.overflows = 0
        self._stop = threading.Event()
        try:
            self.conn = fnfqueue.Connection(alloc_size=128, chunk_size=64)
            _tune_socket(self.conn)
            queue = self.conn.bind(queue_num)
            queue.set_mode(fnfqueue.MAX_PAYLOAD, fnfqueue.COPY_PACKET)
            queue.set_maxlen(QUEUE_MAXLEN)
            if not fail_closed:  # fnfqueue's setter turns the flag ON for False too: only ever set it
                queue.fail_open = True
        except OSError as exc:
            raise QueueError(f"cannot bind NFQUEUE {queue_num}: {exc.strerror or exc} "
                             "(needs root/CAP_NET_ADMIN; is another program bound to that queue?)") from exc
        m = marks
        self._bits = {Verdict.PASS: m.repeat, Verdict.BYPASS: m.repeat | m.bypass,
                      Verdict.BLOCK: m.repeat | m.block, Verdict.BLOCK_QUIET: m.repeat | m.block | m.quiet}

    def run(self) -> None:
        """Read until `stop()`; a queue overflow is counted and reading goes on."""
        verdict = self.firewall.verdict
        bits = self._bits
        repeat, drop, mangle_mark = fnfqueue.REPEAT, fnfqueue.DROP, fnfqueue.MANGLE_MARK
        while not self._stop.is_set():
            try:
                for packet in self.conn:
                    self.received += 1
                    try:
                        payload = packet.payload
                    except fnfqueue.NoSuchAttributeException:
                        payload = b""
                    answer = verdict(payload)
                    if answer == Verdict.DROP:
                        packet.verdict(drop)
                        continue
                    try:
                        mark = packet.mark
                    except fnfqueue.NoSuchAttributeException:
                        mark = 0
                    packet.mark = mark | bits[answer]
                    packet.verdict(repeat, mangle_mark)
                return
            except fnfqueue.BufferOverflowException:
                self.overflows += 1
                log.warning("NFQUEUE %d: netlink buffer overflow #%d (packets in it follow the fail mode)",
                            self.queue_num, self.overflows)
                self.conn.reset()
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.warning("NFQUEUE %d: %s", self.queue_num, exc)

    def stop(self) -> None:
        """Make `run()` return (callable from a signal handler or another thread)."""
        self._stop.set()
        self.conn.close()


class BypassCounter:
    """Counts packets that hit the NFQUEUE rule but never reached the reader (passed by fail-open, or dropped
    with --fail-closed) plus those the firewall could not inspect, and alerts on them."""

    def __init__(self, chains: Chains, reader: QueueReader, on_alert: Callable[[Alert], None],
                 interval: float = 1.0, hostname: str = "", fail_closed: bool = False) -> None:
        self.fail_closed = fail_closed  # then the packets counted here were dropped, not passed
        self.chains = chains
        self.reader = reader
        self.on_alert = on_alert
        self.interval = interval
        self.hostname = hostname
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubeguard-fw-bypass", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> int:
        """Count the packets not inspected since the last check; alert when there are any. Returns them."""
        hit = self.chains.queued_packets()
        seen = self.reader.received + waiting_in_queue(self.reader.queue_num)
        counters = self.reader.firewall.counters
        fail = counters.fail_dropped if self.fail_closed else counters.fail_passed
        bypassed = max(0, hit - seen) + fail
        new = bypassed - self.total
        if new > 0:
            self.total = bypassed
            reason = "queue full or reader not bound" if hit > seen else "packets the engine could not inspect"
            self.on_alert(bypass_alert(new, self.total, reason, self.hostname, dropped=self.fail_closed))
        return max(new, 0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a failed count must not stop the firewall
                log.exception("bypass count failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
