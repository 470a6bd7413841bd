"""The inline firewall as a service: rules, queue reader, bypass counter and pod follow-up in threads.

`kubeguard firewall` and `kubeguard agent --firewall` both run one `InlineFirewall`: `start()`
installs the chains and starts reading the queue; `stop()` removes the chains first (so nothing is
queued to a reader that is going away), then stops the threads. Pods are followed through
`pods()`, called every `reload` seconds: when it returns a new PodMap, the inline addresses and the
firewall's identities follow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubeguard.cluster.podmap import PodMap
from kubeguard.errors import KubeguardError
from kubeguard.model import Alert
from kubeguard.response.firewall import Firewall
from kubeguard.response.iptables import Chains, Marks
from kubeguard.response.queue import BypassCounter, QueueReader

log = logging.getLogger(__name__)


class InlineFirewall:
    """One firewall on one NFQUEUE, in threads of the calling process."""

    def __init__(self, firewall: Firewall, queue_num: int, fail_open: bool, select: Callable[[PodMap], set[str]],
                 pods: Callable[[], PodMap], on_alert: Callable[[Alert], None], reload: float = 2.0,
                 on_reload: Callable[[], None] | None = None) -> None:
        self.firewall = firewall
        self.select = select
        self.pods = pods
        self.on_reload = on_reload
        self.reload = reload
        self.marks = Marks()
        self.chains = Chains(queue_num, queue_bypass=fail_open)
        self.reader = QueueReader(firewall, queue_num, self.marks, fail_closed=not fail_open)
        self.counter = BypassCounter(self.chains, self.reader, on_alert, hostname=firewall.hostname)
        self._podmap = pods()
        firewall.set_pods(self._podmap)
        firewall.select(select(self._podmap))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, name="kubeguard-fw-queue", daemon=True),
                         threading.Thread(target=self._follow, name="kubeguard-fw-pods", daemon=True)]
        self.failed: str = ""

    def start(self) -> None:
        """Install the rules and start the threads (raises IptablesError when iptables refuses)."""
        self.firewall.warm_up()
        self.chains.install(self.firewall.selected)
        self.counter.start()
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the firewall stopped (True) or `timeout` passed (False)."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Remove the rules, stop reading, count the last bypassed packets (idempotent)."""
        first = not self._stop.is_set()
        self._stop.set()
        try:
            if self.chains.installed or first:
                self.chains.remove()
        finally:
            self.reader.stop()
            for thread in self._threads:
                if thread.is_alive() and thread is not threading.current_thread():
                    thread.join(timeout=10)
            self.counter.stop()
            try:
                self.counter.check()
            except KubeguardError as exc:
                log.warning("last bypass count failed: %s", exc)
            self.firewall.finish()

    def _read(self) -> None:
        try:
            self.reader.run()
        except Exception as exc:  # the reader is gone: say why, stop (fail-open rules pass traffic meanwhile)
            self.failed = f"queue reader stopped: {exc}"
            log.exception("firewall queue reader stopped")
        finally:
            self._stop.set()

    def _follow(self) -> None:
        while not self._stop.wait(self.reload):
            try:
                if self.on_reload is not None:
                    self.on_reload()
                podmap = self.pods()
                if podmap is self._podmap:
                    continue
                self._podmap = podmap
                ips = self.select(podmap)
                self.firewall.set_pods(podmap)
                self.firewall.select(ips)
                if not self._stop.is_set():
                    self.chains.set_pods(ips)
            except Exception:  # keep the last good pods; the firewall goes on
                log.exception("pods not applied to the firewall (last good map kept)")
