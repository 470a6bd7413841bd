"""`kubeguard demo --live`: the Tesla breach run for real in the lab, with kubeguard watching (and, with
`--protect`, stopping) it.

Order: build the lab (breach.py) -> start `kubeguard agent` (ebpf sensor, default rules, inline
firewall with DPI on every lab pod; in protect also `--policy-dir`, the dashboard learned and then
switched to protect) -> run the attacker (attacker.py, from the host's network, outside the lab) ->
match each stage with the first alert of its rule attributed to the dashboard pod -> HTML report ->
teardown (always: `finally`, also on Ctrl-C and errors) -> check that nothing of the lab is left.

Why protect cuts the chain at the first stage: the dashboard's workload policy (learned in discover,
then protect) holds only the dashboard's own server. The shell the open console spawns is outside
it, so the exec guard kills it before its first instruction; without a shell no later stage can run.
The one earlier point, the unauthenticated request itself, is a posture finding (`kubeguard scan`:
unauthenticated-console), not something a runtime policy can refuse without breaking the console.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.lab.breach import (
    CONSOLE_PORT,
    DASHBOARD_WORKLOAD,
    POOL_NAME,
    RELAY_PORT,
    S3_PORT,
    BreachLab,
    firewall_chains,
)
from kubeguard.lab.pods import NODE_NAME, LabError
from kubeguard.policy.document import WorkloadPolicy
from kubeguard.policy.store import PolicyStore

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT = 120.0
DETECTION_WAIT = 30.0  # after the attacker is done, how long late alerts may still come
POLICY_BLOCK_RULE = "Policy deviation: process"


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage of the chain and the default rule that must catch it on the dashboard pod."""

    key: str
    title: str
    rule: str
    technique: str


STAGES: tuple[StageSpec, ...] = (
    StageSpec("console", "Shell through the open dashboard", "Terminal shell in container", "T1133 / T1059"),
    StageSpec("token", "Service account token read", "Read service account token", "T1528"),
    StageSpec("metadata", "Cloud keys from the metadata service", "Contact cloud metadata service from container",
              "T1552.005"),
    StageSpec("s3", "S3 telemetry listed and downloaded", "Read cloud credentials file", "T1552.001 / T1530"),
    StageSpec("miner", "Cryptominer started", "Detect crypto miners", "T1496"),
    StageSpec("pool", f"Stratum to the pool via {POOL_NAME}:{RELAY_PORT}", "Stratum mining protocol",
              "T1496 / T1090.002"),
)


@dataclass(slots=True)
class StageResult:
    """What happened at one stage: the attacker's side and kubeguard's."""

    spec: StageSpec
    status: str = "pending"  # pending | running | done | failed | blocked | not reached
    started: float | None = None
    finished: float | None = None
    detail: str = ""
    rule: str | None = None  # the rule that caught it (the expected one when it fired)
    pod: str | None = None  # NAMESPACE/NAME of the alert
    detected: float | None = None

    @property
    def delay(self) -> float | None:
        """Seconds from the stage's start to its detection."""
        if self.detected is None or self.started is None:
            return None
        return max(0.0, self.detected - self.started)


@dataclass(slots=True)
class LiveResult:
    """The run's outcome: stages, every alert, the stores' own evidence and the teardown check."""

    protect: bool
    stages: list[StageResult]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    s3_downloads: list[str] = field(default_factory=list)
    pool_events: list[dict[str, Any]] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    dashboard: str = ""
    cut_at: str | None = None
    leftovers: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @property
    def shares(self) -> int:
        return sum(1 for e in self.pool_events if e.get("event") == "share")

    def ok(self) -> bool:
        """Live: every stage done and caught by its rule on the dashboard pod. Protect: cut at the first
        stage, no download in the store's log, no share in the pool's. Both: nothing left behind."""
        if self.leftovers:
            return False
        first = self.stages[0]
        if self.protect:
            return (first.status == "blocked" and first.rule == POLICY_BLOCK_RULE and first.pod == self.dashboard
                    and all(s.status == "not reached" for s in self.stages[1:])
                    and not self.s3_downloads and self.shares == 0)
        return all(s.status == "done" and s.rule == s.spec.rule and s.pod == self.dashboard for s in self.stages)


class Agent:
    """`kubeguard agent` as a subprocess (its own session: Ctrl-C reaches the runner, which stops it)."""

    def __init__(self, work: Path, lab: BreachLab, queue: int, policy_dir: Path | None) -> None:
        self.work, self.queue = work, queue
        self.alerts_path = work / "alerts.jsonl"
        self.stderr_path = work / "agent.err"
        cmd = [sys.executable, "-m", "kubeguard", "agent", "--sensor", "ebpf", "--pods", str(lab.pods_file),
               "--alerts-out", str(self.alerts_path), "--db", str(work / "alerts.db"), "--node", NODE_NAME,
               "--firewall", "--firewall-queue", str(queue)]
        if policy_dir is not None:
            cmd += ["--policy-dir", str(policy_dir)]
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        self._offset = 0
        self._alerts: list[dict[str, Any]] = []

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_line(self, text: str, timeout: float) -> None:
        """Wait for `text` in the agent's stderr (LabError with its last line when it exits or times out)."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                lines = self.stderr().strip().splitlines()
                raise LabError(f"kubeguard agent: no {text!r} within {timeout:.0f} s"
                               + (f" ({lines[-1]})" if lines else ""))
            time.sleep(0.1)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert written so far (complete lines)."""
        if self.alerts_path.exists():
            with self.alerts_path.open() as fh:
                fh.seek(self._offset)
                chunk = fh.read()
            complete, _, _ = chunk.rpartition("\n")
            if complete:
                self._offset += len(complete.encode()) + 1
                self._alerts.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        return list(self._alerts)

    def stop(self) -> None:
        """SIGTERM (the agent removes its firewall rules), then SIGKILL and `firewall --cleanup` if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, 1) or firewall_chains(self.queue):
            subprocess.run([sys.executable, "-m", "kubeguard", "firewall", "--cleanup", "--queue-num",
                            str(self.queue)], capture_output=True, timeout=60)


def _alert_time(alert: dict[str, Any], seen: float) -> float:
    """The alert's own time (Falco's ISO `time`), else when the runner read it."""
    stamp = alert.get("time")
    if isinstance(stamp, str):
        from datetime import datetime
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return seen


def _pod_of(alert: dict[str, Any]) -> str:
    fields = alert.get("output_fields", {})
    return f"{fields.get('k8s.ns.name')}/{fields.get('k8s.pod.name')}"


class Run:
    """One live run: attacker events and alerts folded into the stage results."""

    def __init__(self, lab: BreachLab, agent: Agent, result: LiveResult, on_update: Callable[[LiveResult], None],
                 on_stage: Callable[[str], None]) -> None:
        self.lab, self.agent, self.result = lab, agent, result
        self.on_update, self.on_stage = on_update, on_stage
        self.by_key = {s.spec.key: s for s in result.stages}

    def attack(self) -> None:
        """Run the attacker from the host's network and follow it until it ends and detections settle."""
        lab = self.lab
        assert lab.dashboard is not None and lab.s3 is not None
        cmd = [sys.executable, "-m", "kubeguard.lab.attacker", "--console", f"http://{lab.dashboard.ip}:{CONSOLE_PORT}",
               "--s3", f"http://{lab.s3.ip}:{S3_PORT}", "--pool-url", f"stratum+tcp://{POOL_NAME}:{RELAY_PORT}"]
        with (lab.work / "attacker.err").open("wb") as err:
            attacker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert attacker.stdout is not None
        os.set_blocking(attacker.stdout.fileno(), False)
        self.by_key["console"].status = "running"
        self.by_key["console"].started = time.time()
        buffer, settle_until = b"", None
        try:
            while True:
                with contextlib.suppress(BlockingIOError, TypeError):
                    buffer += attacker.stdout.read() or b""
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.startswith(b"{"):
                        self._attacker_event(json.loads(line))
                self._pool()
                self._detect()
                self.on_update(self.result)
                if attacker.poll() is not None and settle_until is None:
                    settle_until = time.monotonic() + DETECTION_WAIT
                if settle_until is not None and (time.monotonic() > settle_until or self._settled()):
                    break
                time.sleep(0.2)
        finally:
            if attacker.poll() is None:
                attacker.kill()
            attacker.wait()
        for stage in self.result.stages:
            if stage.status in ("pending", "running"):
                stage.status = "not reached" if self.result.cut_at or stage.started is None else "failed"
        self.on_update(self.result)

    def _attacker_event(self, event: dict[str, Any]) -> None:
        stage = self.by_key[event["stage"]]
        stage.started = float(event["time"])  # the attacker's own clock (same host): when it began
        stage.finished, stage.detail = time.time(), str(event.get("detail", ""))
        if event["status"] == "done":
            stage.status = "done"
            if stage.spec.key == "miner":
                self.by_key["pool"].status, self.by_key["pool"].started = "running", stage.started
        else:
            stage.status = "blocked" if self.result.protect else "failed"
            self.result.cut_at = stage.spec.key if self.result.protect else None
        self.on_stage(stage.spec.key)
        following = [s for s in self.result.stages if s.status == "pending"]
        if event["status"] == "done" and following and stage.spec.key != "miner":
            following[0].status, following[0].started = "running", time.time()

    def _pool(self) -> None:
        """The pool stage is done when the pool's own log shows the miner's first share."""
        self.result.pool_events = self.lab.service_log(self.lab.pool)
        pool = self.by_key["pool"]
        if pool.status == "running" and self.result.shares:
            pool.status, pool.finished = "done", time.time()
            pool.detail = f"{self.result.shares} share(s) accepted by the pool"

    def _detect(self) -> None:
        now = time.time()
        alerts = self.agent.alerts()
        self.result.alerts = alerts
        for stage in self.result.stages:
            if stage.detected is not None or stage.started is None:
                continue
            wanted = POLICY_BLOCK_RULE if self.result.protect and stage.spec.key == "console" else stage.spec.rule
            for alert in alerts:
                if alert.get("rule") == wanted and _pod_of(alert) == self.result.dashboard:
                    stage.rule, stage.pod, stage.detected = wanted, _pod_of(alert), _alert_time(alert, now)
                    break

    def _settled(self) -> bool:
        reached = [s for s in self.result.stages if s.status in ("done", "blocked", "failed")]
        running = [s for s in self.result.stages if s.status == "running"]
        return not running and all(s.detected is not None for s in reached)


def _protect_dashboard(lab: BreachLab, agent: Agent, policy_dir: Path) -> None:
    """Discover the dashboard (one ordinary page view), then switch its workload to protect."""
    import urllib.request

    assert lab.dashboard is not None
    with urllib.request.urlopen(f"http://{lab.dashboard.ip}:{CONSOLE_PORT}/", timeout=30) as page:
        page.read()
    store = PolicyStore(policy_dir)
    store.open()
    ref = WorkloadRef.parse(DASHBOARD_WORKLOAD)
    current = store.user.get(ref)
    policy = current.copy() if current is not None else WorkloadPolicy(ref)
    policy.mode = "protect"
    store.write_user(policy)
    agent.wait_line(f"{DASHBOARD_WORKLOAD} protect enforced on 1 container(s)", AGENT_START_TIMEOUT)


def _flows(lab: BreachLab) -> list[dict[str, Any]]:
    """Connections as the lab's services logged them (client pod -> service), counted."""
    names = {p.ip: f"{p.namespace}/{p.name}" for p in lab.pods.pods}
    names[lab.dashboard.host_ip if lab.dashboard else ""] = "attacker (outside the lab)"
    counted: dict[tuple[str, str, str], int] = {}
    for pod, what in ((lab.dashboard, "console HTTP :9090"), (lab.metadata, "metadata HTTP :80"),
                      (lab.relay, f"CDN relay TCP :{RELAY_PORT}"), (lab.pool, "Stratum :3333")):
        if pod is None:
            continue
        for event in lab.service_log(pod):
            if event.get("event") in ("job", "bad-line"):
                continue
            key = (names.get(str(event.get("client")), str(event.get("client"))), f"{pod.namespace}/{pod.name}", what)
            counted[key] = counted.get(key, 0) + 1
    for line in lab.s3_requests():
        client = line.split(" ", 1)[0]
        if lab.s3 is not None:
            key = (names.get(client, client), f"{lab.s3.namespace}/{lab.s3.name}", "S3 HTTP :9000")
            counted[key] = counted.get(key, 0) + 1
    return [{"client": c, "server": s, "service": w, "requests": n} for (c, s, w), n in sorted(counted.items())]


def run_live(protect: bool, work: Path | None = None, on_update: Callable[[LiveResult], None] = lambda _: None,
             on_stage: Callable[[str], None] = lambda _: None,
             progress: Callable[[str], None] = lambda _: None,
             on_lab: Callable[[BreachLab], None] = lambda _: None) -> LiveResult:
    """Build the lab, run agent and attacker, tear everything down (always); the result says what happened.

    `on_stage(key)` is called as each attacker stage ends (tests inject failures through it); `on_lab`
    gets the lab before it is built (its `leftovers()` can be checked even when the run raised).
    """
    work = work or Path(tempfile.mkdtemp(prefix="kubeguard-live-"))
    lab = BreachLab(work)
    result = LiveResult(protect, [StageResult(spec) for spec in STAGES])
    agent: Agent | None = None
    queue = random.randrange(1000, 60000)
    lab.firewall_queue = queue
    on_lab(lab)
    try:
        lab.build(progress)
        assert lab.dashboard is not None
        result.dashboard = f"{lab.dashboard.namespace}/{lab.dashboard.name}"
        policy_dir = work / "policies" if protect else None
        agent = Agent(work, lab, queue, policy_dir)
        agent.wait_line(" running", AGENT_START_TIMEOUT)
        progress("agent running (ebpf sensor, default rules, inline firewall with DPI)")
        if policy_dir is not None:
            _protect_dashboard(lab, agent, policy_dir)
            progress(f"{DASHBOARD_WORKLOAD} in protect")
        Run(lab, agent, result, on_update, on_stage).attack()
        result.s3_downloads = lab.s3_downloads()
        result.pool_events = lab.service_log(lab.pool)
        result.flows = _flows(lab)
    finally:
        with _no_interrupts():
            try:
                if agent is not None:
                    agent.stop()
            finally:
                lab.close()
                result.leftovers = lab.leftovers()
    return result


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while tearing down (a second Ctrl-C must not leave half a lab behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
