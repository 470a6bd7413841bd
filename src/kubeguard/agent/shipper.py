"""Ship alerts and heartbeats to the console over HTTPS; fetch the desired policy mode per workload.

`ConsoleOutput` is an agent output: `send()` writes the batch to the disk spool (durable, bounded) and
returns; a sender thread posts the oldest spooled alerts in batches to ``POST /api/agent/batch`` with
the node's bearer token (and a client certificate when the console wants mTLS), removes them once the
console answered 200, and backs off (0.5 s doubling to 15 s) while the console is unreachable.
Every alert carries its stable ``uuid``: a batch resent after a timeout or a console crash is stored
once. Heartbeats (version, events/s, drops, spool depth) ride along at least every `heartbeat` seconds.

Flow records (kubeguard.agent.flowship's aggregated records, each with a stable ``flow.id``) take the
same way through their own spool (`flows`, bounded, drops counted) to ``POST /api/agent/flows``, after
the waiting alerts; the console stores each ``flow.id`` once.

Policy modes (for the policy engine): every `poll` seconds the thread fetches ``GET /api/agent/modes``;
`mode_of(namespace, workload)` answers the desired mode (``discover`` when none is set) and
`on_modes` callbacks get the whole map ``{(namespace, workload): mode}`` whenever it changes. The same
answer lists the pods the console wants quarantined; `on_quarantines` callbacks get
``{(namespace, pod): freeze}`` at every poll (kubeguard.response.remote applies it on this node).
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubeguard import __version__
from kubeguard.agent.outputs import Output
from kubeguard.agent.spool import Spool
from kubeguard.errors import KubeguardError
from kubeguard.model import Alert

log = logging.getLogger(__name__)
BATCH = 1000
FLOW_BATCH = 1000  # the console takes up to 5000 flow records per request
DEFAULT_MODE = "discover"
Modes = dict[tuple[str, str], str]
Quarantines = dict[tuple[str, str], bool]  # (namespace, pod) -> freeze too


class ShipperError(KubeguardError):
    """The console shipping cannot be set up: bad --console URL, unreadable token or TLS files."""


def tls_context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Client TLS: verify the console against `ca` (else the system CAs); present `cert`/`key` for mTLS."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise ShipperError(f"console TLS files: {exc}") from exc
    return context


MAX_TOKEN_BYTES = 64 << 10  # a bearer token is a few hundred bytes; /dev/zero is not read whole


def read_token(path: Path, what: str = "console token") -> str:
    """A bearer token from a file (a mounted Secret); ShipperError naming the file when unreadable or empty."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ShipperError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if len(data) > MAX_TOKEN_BYTES:
        raise ShipperError(f"{path}: {what} file is over {MAX_TOKEN_BYTES >> 10} KiB: not a token")
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ShipperError(f"{path}: {what} file is not text (byte {exc.start})") from exc
    if not token:
        raise ShipperError(f"{path}: {what} file is empty")
    return token


class ConsoleOutput(Output):
    """Alerts to the console through a disk spool; heartbeats; policy-mode poll."""

    def __init__(self, url: str, token: str, spool: Spool, context: ssl.SSLContext | None = None,
                 health: Callable[[], dict[str, Any]] | None = None, heartbeat: float = 10.0, poll: float = 10.0,
                 timeout: float = 10.0, flows: Spool | None = None) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ShipperError(f"--console {url}: expected an https:// URL")
        self.base = url.rstrip("/")
        self.name = f"console {self.base}"
        self.spool = spool
        self.flows = flows
        self.flows_sent = 0  # flow records acknowledged by the console
        self.context = context or ssl.create_default_context()
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.health = health or (lambda: {})
        self.heartbeat = heartbeat
        self.poll = poll
        self.timeout = timeout
        self.delivered = 0
        self.batches = 0
        self.failed_posts = 0
        self.modes: Modes = {}
        self.on_modes: list[Callable[[Modes], None]] = []
        self.quarantines: Quarantines = {}
        self.on_quarantines: list[Callable[[Quarantines], None]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_beat = 0.0
        self._last_poll = 0.0
        self._thread = threading.Thread(target=self._run, name="console-shipper", daemon=True)
        self._thread.start()

    # --- the output side (alert thread) -------------------------------------------------------------
    def send(self, alerts: Sequence[Alert]) -> None:
        records = [{**a.to_falco(), "uuid": a.uuid} for a in alerts]
        try:
            self.spool.add(records)
        except Exception as exc:  # sqlite3 / OS errors: the alerts are still in the agent's store
            self._fail(f"spool {self.spool.path}: {exc}", len(records))
            return
        self.sent += len(records)
        self._wake.set()

    def send_flows(self, records: Sequence[dict[str, Any]]) -> None:
        """Spool flow records for the console (no flow spool: ignored); the oldest go when it is full."""
        if self.flows is None or not records:
            return
        try:
            self.flows.add(records)
        except Exception as exc:  # sqlite3 / OS errors: flows are not kept anywhere else; say it once
            reason = f"flow spool {self.flows.path}: {exc}"
            if reason not in self._warned:
                self._warned.add(reason)
                log.warning("%s: %d flow records lost", reason, len(records))
            return
        self._wake.set()

    def _waiting(self) -> int:
        return len(self.spool) + (len(self.flows) if self.flows is not None else 0)

    def mode_of(self, namespace: str, workload: str) -> str:
        """The desired policy mode the console holds for this workload (``discover`` when none)."""
        return self.modes.get((namespace, workload), DEFAULT_MODE)

    def close(self, drain: float = 10.0) -> None:
        """Try to deliver what is spooled for up to `drain` seconds; the rest stays for the next start."""
        deadline = time.monotonic() + drain
        while self._waiting() and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout + 5)
        self.spool.close()
        if self.flows is not None:
            self.flows.close()

    # --- the sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
                if self._stop.is_set():
                    break
            try:
                more = self._ship_once()
                self._poll_modes()
                backoff = 0.0
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.failed_posts += 1
                reason = str(getattr(exc, "reason", exc))
                if reason not in self._warned:
                    self._warned.add(reason)
                    log.warning("console %s unreachable (%s): alerts are spooled in %s", self.base, reason,
                                self.spool.path)
                backoff = min(15.0, max(0.5, backoff * 2))
                continue
            except Exception:  # a bug must not end shipping for the agent's life: say it loudly, retry later
                self.failed_posts += 1
                log.exception("console shipping failed; alerts stay spooled in %s", self.spool.path)
                backoff = min(15.0, max(0.5, backoff * 2))
                continue
            if not more:
                self._wake.wait(min(self.heartbeat, self.poll))
                self._wake.clear()

    def _ship_once(self) -> bool:
        """Post one batch of alerts (with a heartbeat when due), then one of flows; True when more wait."""
        pending = self.spool.peek(BATCH)
        now = time.monotonic()
        beat = now - self._last_beat >= self.heartbeat
        if pending or beat:
            body: dict[str, Any] = {"alerts": [record for _, record in pending]}
            if beat:
                body["heartbeat"] = self._heartbeat()
            answer = self._request("POST", "/api/agent/batch", body)
            self.spool.remove([seq for seq, _ in pending])
            self.delivered += len(pending)
            self.batches += 1
            if beat:
                self._last_beat = now
            log.debug("console: %d stored, %d duplicates", answer.get("stored", 0), answer.get("duplicates", 0))
        more_flows = self._ship_flows()  # after the alerts, never starved by them
        return len(pending) == BATCH or more_flows

    def _ship_flows(self) -> bool:
        """Post the oldest spooled flow records; True when more wait."""
        pending = self.flows.peek(FLOW_BATCH) if self.flows is not None else []
        if not pending:
            return False
        assert self.flows is not None
        self._request("POST", "/api/agent/flows", {"flows": [record for _, record in pending]})
        self.flows.remove([seq for seq, _ in pending])
        self.flows_sent += len(pending)
        return len(pending) == FLOW_BATCH

    def _heartbeat(self) -> dict[str, Any]:
        health = dict(self.health())
        return {"version": __version__, "events_per_s": float(health.pop("events_per_s", 0.0)),
                "drops": int(health.pop("drops", 0)), "alerts_sent": self.delivered, "spooled": len(self.spool),
                "spool_dropped": self.spool.dropped, "stats": {**health, **self._flow_figures()}}

    def _flow_figures(self) -> dict[str, int]:
        if self.flows is None:
            return {}
        return {"flows_sent": self.flows_sent, "flows_spooled": len(self.flows), "flows_dropped": self.flows.dropped}

    def _poll_modes(self) -> None:
        now = time.monotonic()
        if now - self._last_poll < self.poll:
            return
        answer = self._request("GET", "/api/agent/modes")
        self._last_poll = now
        modes = {(str(m["namespace"]), str(m["workload"])): str(m["mode"]) for m in answer.get("modes", [])}
        if modes != self.modes:
            self.modes = modes
            for callback in self.on_modes:
                callback(dict(modes))
        quarantines = {(str(q["namespace"]), str(q["pod"])): bool(q.get("freeze")) for q in
                       answer.get("quarantines", [])}
        for apply in self.on_quarantines:  # every poll: an applier retries what failed before
            apply(dict(quarantines))
        self.quarantines = quarantines

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body, default=str).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=self.headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:
                parsed = json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            # 401/403: a wrong or revoked token; 422: a record the console refuses. Neither heals by itself:
            # keep the alerts spooled and say so once.
            raise OSError(f"HTTP {exc.code} from {path}") from exc
        except http.client.HTTPException as exc:  # the console died mid-answer (IncompleteRead, BadStatusLine)
            raise OSError(f"broken answer from {path}: {type(exc).__name__}") from exc
        if not isinstance(parsed, dict):
            raise OSError(f"{path}: the console answered a JSON {type(parsed).__name__}, not an object")
        return parsed
