"""`kubeguard firewall`: put selected pods inline (NFQUEUE) behind the DPI engine and their allow-lists."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from kubeguard.cliutil import UserError, die, stderr, warn
from kubeguard.cluster.podmap import PodMap, PodMapError
from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.model import Alert, Severity, Workload
from kubeguard.net.commands import AlertSink
from kubeguard.policy.model import PolicyError
from kubeguard.policy.store import PolicyStore
from kubeguard.response.allowlist import MODES, AllowList, AllowListError, load
from kubeguard.response.firewall import Firewall
from kubeguard.response.inject import Injector
from kubeguard.response.iptables import Chains, IptablesError, Marks
from kubeguard.response.queue import BypassCounter, QueueError, QueueReader
from kubeguard.store.alerts import AlertStore, StoreError

log = logging.getLogger(__name__)
SEVERITIES = {s.name.lower(): s for s in Severity}


def parse_selector(text: str) -> dict[str, Any]:
    """`app=web,tier!=db,env in (a,b),!legacy,canary` -> a LabelSelector (kubectl's -l syntax)."""
    labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in (p.strip() for p in parts):
        if not raw:
            raise UserError(f"--selector {text!r}: empty requirement")
        words = raw.split(None, 1)
        if len(words) == 2 and words[1].split(None, 1)[0] in ("in", "notin"):
            op, _, values = words[1].partition(" ")
            values = values.strip()
            if not (values.startswith("(") and values.endswith(")")):
                raise UserError(f"--selector {text!r}: {raw!r} needs a (value,...) list")
            exprs.append({"key": words[0], "operator": "In" if op == "in" else "NotIn",
                          "values": [v.strip() for v in values[1:-1].split(",") if v.strip()]})
        elif "!=" in raw:
            key, value = raw.split("!=", 1)
            exprs.append({"key": key.strip(), "operator": "NotIn", "values": [value.strip()]})
        elif "=" in raw:
            key, value = raw.split("==" if "==" in raw else "=", 1)
            labels[key.strip()] = value.strip()
        elif raw.startswith("!"):
            exprs.append({"key": raw[1:].strip(), "operator": "DoesNotExist"})
        else:
            exprs.append({"key": raw, "operator": "Exists"})
    return {"matchLabels": labels, "matchExpressions": exprs}


class Selection:
    """Which pods of the pods map are inline: namespace / label selector, plus every allow-list pod."""

    def __init__(self, namespaces: list[str], selector: dict[str, Any] | None, allowlist: AllowList,
                 everything: bool) -> None:
        self.namespaces = set(namespaces)
        self.selector = selector
        self.allowlist = allowlist
        self.everything = everything

    def ips(self, podmap: PodMap) -> set[str]:
        out = set()
        for ip, workload in podmap.by_ip.items():
            chosen = self.everything or bool(self.allowlist.policies_for(workload))
            if not chosen and (self.namespaces or self.selector is not None):
                chosen = (not self.namespaces or workload.namespace in self.namespaces) and (
                    self.selector is None or label_selector_selects(self.selector, dict(workload.labels)))
            if chosen:
                out.add(ip)
        return out


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
        code = _run(pods, selector, namespace, all_pods, allow_list, policy_dir, mode, fail_open, block_severity,
                    queue_num, reload, duration, output, db, no_store, cleanup)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def _run(pods: Path | None, selector: str | None, namespaces: list[str], all_pods: bool, allow_list: Path | None,
         policy_dir: Path | None, mode: str, fail_open: bool, block_severity: str, queue_num: int, reload: float,
         duration: float | None, output: str, db: Path | None, no_store: bool, cleanup: bool) -> int:
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
    try:
        chains = Chains(queue_num, queue_bypass=fail_open)
    except IptablesError as exc:
        raise UserError(str(exc)) from exc
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
    fw_podmap = [podmap]  # the current pods map, for owner lookups (the watcher replaces it)
    mode_of = None if policies is None else policy_modes(policies, fw_podmap)
    fw = Firewall(podmap, allowlist, default_mode=mode, on_alert=sink, injector=injector,
                  fail_closed=not fail_open, block_severity=SEVERITIES[block_severity.lower()],
                  hostname=socket.gethostname(), mode_of=mode_of)
    fw.select(selection.ips(podmap))
    marks = Marks()
    try:
        reader = QueueReader(fw, queue_num, marks, fail_closed=not fail_open)
    except QueueError as exc:
        raise UserError(str(exc)) from exc
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: (stop.set(), reader.stop())) for sig in (signal.SIGTERM,
                                                                                           signal.SIGINT)}
    counter = None
    status = 0
    try:
        try:
            chains.install(fw.selected)
        except IptablesError as exc:
            raise UserError(str(exc)) from exc
        counter = BypassCounter(chains, reader, sink, hostname=fw.hostname)
        counter.start()
        watcher = threading.Thread(target=_watch_pods, args=(pods, reload, stop, fw, chains, selection, policies,
                                                             fw_podmap),
                                   name="kubeguard-fw-pods", daemon=True)
        watcher.start()
        if duration is not None:
            timer = threading.Timer(duration, lambda: (stop.set(), reader.stop()))
            timer.daemon = True
            timer.start()
        stderr.print(f"firewall: inline for {len(fw.selected)} pod addresses on NFQUEUE {queue_num} "
                     f"({'fail-open' if fail_open else 'fail-closed'})", markup=False)
        reader.run()
    finally:
        stop.set()
        try:
            chains.remove()
        except IptablesError as exc:
            warn(f"could not remove every firewall rule: {exc} (run `kubeguard firewall --cleanup`)")
            status = 1
        reader.stop()
        if counter is not None:
            counter.stop()
            counter.check()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        fw.finish()
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
                 f"{counter.total if counter else 0} packets passed uninspected; rules removed", markup=False)
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


def policy_modes(store: PolicyStore, podmap: list[PodMap]) -> Callable[[Workload], str | None]:
    """A workload's mode from its WorkloadPolicy (None when it has none, or one without a mode)."""

    def mode_of(workload: Workload) -> str | None:
        ref = podmap[0].owners.get(workload.pod_uid)
        policy = store.effective(ref) if ref is not None else None
        return policy.mode if policy is not None else None

    return mode_of


def _watch_pods(path: Path, interval: float, stop: threading.Event, fw: Firewall, chains: Chains,
                selection: Selection, policies: PolicyStore | None, current: list[PodMap]) -> None:
    """Follow the pods file (new or gone pods change the inline addresses; last good map kept) and the
    policy directory (mode changes apply to the next decision)."""
    try:
        seen = path.stat().st_mtime_ns
    except OSError:
        seen = 0
    while not stop.wait(interval):
        if policies is not None:
            for problem in policies.reload():
                log.warning("policy: %s", problem)
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == seen:
                continue
            seen = mtime
            podmap = PodMap.from_file(path)
            ips = selection.ips(podmap)
            current[0] = podmap
            fw.set_pods(podmap)
            fw.select(ips)
            if not stop.is_set():
                chains.set_pods(ips)
        except (OSError, PodMapError, IptablesError) as exc:
            log.warning("pods file not applied (last good map kept): %s", exc)
