"""Host names in rule conditions, as Falco's `fd.sip.name`, `fd.cip.name`, `fd.lip.name`, `fd.rip.name` use them.

In Falco (libsinsp's sinsp_filter_check_fd::compare_domain and sinsp_dns_manager) `fd.sip.name = NAME` holds
when the server address is one of the addresses NAME resolves to (getaddrinfo, re-resolved in the background),
`in (A, B)` when it is one of A's or B's, and `!= NAME` when it is not; only `=`, `!=` and `in` are allowed.
Here:
- `HostNames` keeps name -> addresses: names the agent knows without asking a resolver (the cluster's own
  service names, `set_static`) and names resolved with the node's resolver (`start` runs a daemon thread that
  resolves every name a compiled condition wants and re-resolves them every `refresh_s`; only enabled rules are
  compiled, so the names of rules Falco ships disabled, such as the miner pool domains, are looked up only once
  a user enables them, as in Falco); cluster names are never sent to the node's resolver;
- a name not resolved yet matches no address (Falco resolves it on first use, blocking its event loop);
- the agent starts the resolver only with `--resolve-names` (kubeguard's default rules name mining-pool
  domains, and DNS queries for them from every node are themselves a miner alarm in cloud threat detection);
- `HOST_NAMES` is the process's registry (libsinsp's is a singleton too); `NameSet` is what the condition
  compiler stores for one comparison.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

REFRESH_S = 60.0
RESOLVER_THREADS = 8
# The names pods reach the API server by (the `default` namespace's `kubernetes` service), for the cluster
# domain kubelet uses unless told otherwise.
API_SERVER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local")


def is_cluster_name(name: str) -> bool:
    """A name only the cluster's DNS knows (the API server's service names, *.cluster.local): never sent to the
    node's resolver, which cannot answer it and would pass it upstream; the API server's come from
    `set_cluster_names`."""
    return name in API_SERVER_NAMES or name.endswith(".cluster.local")


def resolve(name: str) -> frozenset[str]:
    """The addresses the node's resolver gives for `name` (empty when it has none)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


class HostNames:
    """name -> addresses: static names plus names resolved in the background."""

    def __init__(self) -> None:
        self._static: dict[str, frozenset[str]] = {}
        self._resolved: dict[str, frozenset[str]] = {}
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def set_static(self, name: str, addresses: Iterable[str]) -> None:
        with self._lock:
            self._static[name.lower()] = frozenset(addresses)

    def set_cluster_names(self, environ: Mapping[str, str]) -> bool:
        """The API server's service names -> KUBERNETES_SERVICE_HOST (kubelet sets it in every pod, the agent's
        too); False when the variable is absent."""
        host = environ.get("KUBERNETES_SERVICE_HOST", "").strip()
        if not host:
            return False
        for name in API_SERVER_NAMES:
            self.set_static(name, (host,))
        return True

    def want(self, names: Iterable[str]) -> None:
        """Names a condition compares with: resolved by the background thread (when started)."""
        with self._lock:
            new = {n.lower() for n in names} - self._wanted
            self._wanted |= new
        if new:
            self._wake.set()

    def addresses(self, name: str) -> frozenset[str]:
        key = name.lower()
        found = self._static.get(key)
        return found if found is not None else self._resolved.get(key, frozenset())

    def resolve_wanted(self) -> None:
        """Resolve every wanted name that is not static, once (a few at a time: a slow resolver must not
        hold up the names after it)."""
        with self._lock:
            names = sorted(n for n in self._wanted - set(self._static) if not is_cluster_name(n))
        with ThreadPoolExecutor(RESOLVER_THREADS) as pool:
            for name, found in zip(names, pool.map(resolve, names), strict=True):
                with self._lock:
                    self._resolved[name] = found
        log.debug("resolved %d rule host names", len(names))

    def start(self, refresh_s: float = REFRESH_S) -> None:
        """Resolve the wanted names now and every `refresh_s` (and whenever new names are wanted)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while True:
                self._wake.clear()
                self.resolve_wanted()
                self._wake.wait(refresh_s)

        self._thread = threading.Thread(target=loop, name="rule-host-names", daemon=True)
        self._thread.start()


HOST_NAMES = HostNames()


class NameSet:
    """One `fd.Xip.name` comparison's names: does an address belong to one of them?"""

    __slots__ = ("names", "registry")

    def __init__(self, names: Iterable[str], registry: HostNames = HOST_NAMES) -> None:
        self.names = tuple(names)
        self.registry = registry
        registry.want(self.names)

    def has(self, explicit: Any, ip: Any) -> bool:
        """`explicit`: the event's own fd.Xip.name (a recorded event may carry it), else `ip` is tested."""
        if explicit is not None:
            return str(explicit).lower() in {n.lower() for n in self.names}
        if ip is None:
            return False
        address = str(ip)
        return any(address in self.registry.addresses(name) for name in self.names)

    def lacks(self, explicit: Any, ip: Any) -> bool:
        """`!= NAME`: an inet address (or name) that is not the name's (False without one, as in Falco)."""
        if explicit is None and ip is None:
            return False
        return not self.has(explicit, ip)

    def __repr__(self) -> str:
        return f"NameSet({self.names!r})"
