"""`kubeguard firewall`: put selected pods inline (NFQUEUE) behind the DPI engine and their allow-lists."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stderr, warn
from kubeguard.cluster.podmap import PodMap, PodMapError
from kubeguard.errors import KubeguardError
from kubeguard.model import Alert, Severity
from kubeguard.net.commands import AlertSink
from kubeguard.policy.document import PolicyError
from kubeguard.policy.store import PolicyStore
from kubeguard.response.allowlist import MODES, AllowList, AllowListError, load
from kubeguard.response.firewall import Firewall
from kubeguard.response.inject import Injector
from kubeguard.response.inline import InlineFirewall
from kubeguard.response.iptables import Chains, IptablesError
from kubeguard.response.modes import policy_modes
from kubeguard.response.netpol import NetpolCheck
from kubeguard.response.selection import Selection, parse_selector
from kubeguard.store.alerts import AlertStore, StoreError

log = logging.getLogger(__name__)
SEVERITIES = {s.name.lower(): s for s in Severity}


class LockedSink:
    """An AlertSink shared by the queue reader and the bypass counter's thread."""

    def __init__(self, sink: AlertSink) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    def __call__(self, alert: Alert) -> None:
        with self.lock:
            self.sink(alert)

    def flush(self) -> None:
        with self.lock:
            self.sink.flush()


def firewall(
    pods: Path = typer.Option(None, "--pods", help="Pods map (Snapshot JSON or `kubectl get pods -o json`)."),
    selector: str = typer.Option(None, "--selector", "-l", help="Inline the pods matching this label selector."),
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="Inline this namespace's pods (repeatable)."),
    all_pods: bool = typer.Option(False, "--all-pods", help="Inline every pod of the pods map."),
    allow_list: Path = typer.Option(None, "--allow-list", help="Protocol allow-list YAML (docs/firewall.md); "
                                                                "the pods it selects are inline too."),
    policy_dir: Path = typer.Option(None, "--policy-dir", envvar="KUBEGUARD_POLICY_DIR",
                                    help="Workload policies (the agent's --policy-dir): a workload's mode there "
                                         "wins over the allow-list's and --mode."),
    netpol: list[Path] = typer.Option([], "--netpol", help="NetworkPolicy (and Namespace) manifests, file or "
                                                           "directory (repeatable): L3/L4 denies are blocked too."),
    mode: str = typer.Option("monitor", "--mode", help="Mode of inline pods no allow-list policy selects: "
                                                       "discover, monitor (alert only) or protect (block)."),
    fail_open: bool = typer.Option(True, "--queue-bypass/--fail-closed",
                                   help="Queue full, reader gone or packet not inspectable: pass and count "
                                        "(default) or drop."),
    block_severity: str = typer.Option("high", "--block-severity", help="Lowest detection severity that blocks."),
    queue_num: int = typer.Option(7, "--queue-num", help="NFQUEUE number."),
    reload: float = typer.Option(2.0, "--reload", help="Seconds between checks of the pods file for changes."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds."),
    output: str = typer.Option("json", "--output", "-o", help="Alert output: json (Falco format) or rich."),
    db: Path = typer.Option(None, "--db", help="Alert store (default $KUBEGUARD_DB or ~/.local/share/kubeguard)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not write alerts to the alert store."),
    cleanup: bool = typer.Option(False, "--cleanup", help="Only remove rules a killed run left behind, then exit."),
) -> None:
    """Inline L7 firewall: selected pods' traffic through NFQUEUE, DPI verdicts, allow-lists; root only."""
    try:
        code = _run(pods, selector, namespace, all_pods, allow_list, policy_dir, netpol, mode, fail_open,
                    block_severity, queue_num, reload, duration, output, db, no_store, cleanup)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def _run(pods: Path | None, selector: str | None, namespaces: list[str], all_pods: bool, allow_list: Path | None,
         policy_dir: Path | None, netpol: list[Path], mode: str, fail_open: bool, block_severity: str,
         queue_num: int, reload: float, duration: float | None, output: str, db: Path | None, no_store: bool,
         cleanup: bool) -> int:
    if not 0 <= queue_num <= 65535:
        raise UserError(f"--queue-num: expected 0-65535, got {queue_num}")
    if cleanup:
        try:
            Chains(queue_num).remove()
        except IptablesError as exc:
            raise UserError(str(exc)) from exc
        stderr.print(f"firewall: rules of queue {queue_num} removed", markup=False)
        return 0
    if mode not in MODES:
        raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if block_severity.lower() not in SEVERITIES:
        raise UserError(f"--block-severity: expected one of {', '.join(SEVERITIES)}, got {block_severity!r}")
    if output not in ("rich", "json"):
        raise UserError(f"--output: expected rich or json, got {output!r}")
    if reload <= 0:
        raise UserError(f"--reload: expected seconds > 0, got {reload}")
    if pods is None:
        raise UserError("--pods FILE is required (the pods map naming pod addresses and labels)")
    podmap = _read_pods(pods)
    allowlist = AllowList()
    if allow_list is not None:
        try:
            allowlist = load(allow_list)
        except AllowListError as exc:
            raise UserError(str(exc)) from exc
    label_selector = parse_selector(selector) if selector is not None else None
    if not (all_pods or namespaces or label_selector is not None or allowlist.policies):
        raise UserError("select pods: --selector, --namespace, --all-pods or an --allow-list with policies")
    selection = Selection(namespaces, label_selector, allowlist, all_pods)
    policies = _policy_store(policy_dir) if policy_dir is not None else None
    check = None
    if netpol:
        check = NetpolCheck(netpol)
        for problem in check.problems:
            warn(problem)
        check.reload_pods(pods)
    store = None
    if not no_store:
        try:
            store = AlertStore(db)
        except StoreError as exc:
            raise UserError(str(exc)) from exc
    sink = LockedSink(AlertSink(output, store, live_mode=True))
    try:
        injector = Injector()
    except OSError as exc:
        raise UserError(f"cannot open a raw socket for TCP resets: {exc.strerror or exc} (needs root)") from exc
    follow = PodsFile(pods, podmap, on_change=None if check is None else lambda: check.reload_pods(pods))
    mode_of = None if policies is None else policy_modes(policies, follow.current)
    fw = Firewall(podmap, allowlist, default_mode=mode, on_alert=sink, injector=injector,
                  fail_closed=not fail_open, block_severity=SEVERITIES[block_severity.lower()],
                  hostname=socket.gethostname(), mode_of=mode_of, netpol=None if check is None else check.decide)
    try:
        inline = InlineFirewall(fw, queue_num, fail_open, selection.ips, follow.current, sink, reload=reload,
                                on_reload=None if policies is None else lambda: _reload_policies(policies))
    except KubeguardError:
        injector.close()
        if store is not None:
            store.close()
        raise
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        inline.start()
        stderr.print(f"firewall: inline for {len(fw.selected)} pod addresses on NFQUEUE {queue_num} "
                     f"({'fail-open' if fail_open else 'fail-closed'})", markup=False)
        deadline = None if duration is None else time.monotonic() + duration
        while not stopping.is_set() and not inline.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
        if inline.failed:
            warn(inline.failed)
            status = 1
    except IptablesError as exc:
        raise UserError(str(exc)) from exc
    finally:
        try:
            inline.stop()
        except IptablesError as exc:
            warn(f"could not remove every firewall rule: {exc} (run `kubeguard firewall --cleanup`)")
            status = 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        injector.close()
        try:
            sink.flush()
        except StoreError as exc:
            warn(str(exc))
            status = 1
        if store is not None:
            store.close()
    c = fw.counters
    stderr.print(f"firewall: {c.packets} packets, {c.bypassed_flows} flows bypassed, {c.blocked_flows} flows blocked "
                 f"({c.http_403} with HTTP 403), {c.alerts} alerts, {c.unparsed} unparsed, {c.errors} errors, "
                 f"{inline.counter.total} packets {'passed' if fail_open else 'dropped'} uninspected; rules removed",
                 markup=False)
    return status


def _read_pods(path: Path) -> PodMap:
    try:
        return PodMap.from_file(path)
    except PodMapError as exc:
        raise UserError(str(exc)) from exc


def _policy_store(directory: Path) -> PolicyStore:
    if not directory.is_dir():
        raise UserError(f"--policy-dir {directory}: no such directory")
    store = PolicyStore(directory)
    try:
        store.open()
    except PolicyError as exc:
        raise UserError(str(exc)) from exc
    for problem in store.errors.values():
        warn(f"policy: {problem} (refused)")
    return store


def _reload_policies(store: PolicyStore) -> None:
    for problem in store.reload():
        log.warning("policy: %s", problem)


class PodsFile:
    """The pods file, re-read when it changes; the last good map is kept when a read fails."""

    def __init__(self, path: Path, podmap: PodMap, on_change: Callable[[], None] | None = None) -> None:
        self.path = path
        self.podmap = podmap
        self.on_change = on_change
        try:
            self.mtime = path.stat().st_mtime_ns
        except OSError:
            self.mtime = 0

    def current(self) -> PodMap:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self.mtime:
                self.mtime = mtime
                self.podmap = PodMap.from_file(self.path)
                if self.on_change is not None:
                    self.on_change()
        except (OSError, PodMapError, KubeguardError) as exc:
            log.warning("pods file not applied (last good map kept): %s", exc)
        return self.podmap
