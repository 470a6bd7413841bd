"""Quarantines asked for in the console, applied by the agent of the pod's node.

`QuarantineApplier` is an `on_quarantines` callback of the agent's console shipper: it gets the whole
desired set ``{(namespace, pod): freeze}`` at every poll, quarantines the pods of this node's pod map
that are newly in it, releases those that left it, and retries what failed at the next poll. Pods that
are not in this node's pod map belong to another node's agent and are left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubeguard.cluster.podmap import PodMap
from kubeguard.response.quarantine import QuarantineError, Target, quarantine, release, target_of

log = logging.getLogger(__name__)
Desired = dict[tuple[str, str], bool]


class QuarantineApplier:
    """Make this node's quarantines match the console's desired set."""

    def __init__(self, podmap: Callable[[], PodMap]) -> None:
        self.podmap = podmap
        self.applied: dict[tuple[str, str], tuple[Target, bool]] = {}
        self.errors = 0
        self._lock = threading.Lock()

    def __call__(self, desired: Desired) -> None:
        with self._lock:
            for key in [k for k in self.applied if k not in desired]:
                target, _ = self.applied[key]
                try:
                    release(target)
                except QuarantineError as exc:
                    self._fail(key, f"cannot release: {exc}")
                    continue
                del self.applied[key]
                log.warning("console: released %s/%s", *key)
            for key, freeze in desired.items():
                if key in self.applied and self.applied[key][1] == freeze:
                    continue
                try:
                    target = target_of(self.podmap(), *key)
                except LookupError:
                    continue  # not a pod of this node
                try:
                    quarantine(target, freeze)
                except QuarantineError as exc:
                    self._fail(key, str(exc))
                    continue
                self.applied[key] = (target, freeze)
                log.warning("console: quarantined %s/%s (%s%s)", *key, target.ip, ", frozen" if freeze else "")

    def _fail(self, key: tuple[str, str], reason: str) -> None:
        self.errors += 1
        log.warning("console: quarantine of %s/%s: %s (retried at the next poll)", *key, reason)
