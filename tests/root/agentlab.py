"""The real agent for end-to-end root tests: `kubeguard agent` as a subprocess with its outputs in files.

    agent = AgentProcess.start(work_dir, pods_file)         # returns once the sensor runs
    ... run attacks in podlab pods, rewriting pods_file as pods appear ...
    alert = agent.wait_alert("Terminal shell in container", pod.container_id)
    summary = agent.stop()                                   # SIGTERM; everything flushed

Under CI=true a sensor that cannot start fails the test; elsewhere it skips (through `require`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"events (\d+), processed (\d+), dropped (\d+) \(queue\) \+ (\d+) \(kernel\), alerts (\d+)")


@dataclass
class AgentProcess:
    """A running agent; its alerts (Falco JSON lines), events log and stderr are files under `work`."""

    proc: subprocess.Popen[bytes]
    work: Path
    alerts_path: Path
    events_path: Path
    stderr_path: Path
    _seen: list[dict[str, Any]] = field(default_factory=list)
    _offset: int = 0

    @classmethod
    def start(cls, work: Path, pods: Path, sensor: str = "ebpf", extra: list[str] | None = None,
              timeout: float = 90.0, env_extra: dict[str, str] | None = None,
              prefix: list[str] | None = None, events_out: bool = True) -> AgentProcess:
        """Start the agent and wait for its "sensor ... running" line; raises RuntimeError with its stderr.

        `env_extra`: variables set for the agent (as its pod's environment would); `prefix`: a command the agent
        runs under (e.g. a private mount namespace); `events_out=False`: no events log (as the DaemonSet runs)."""
        work.mkdir(parents=True, exist_ok=True)
        paths = {name: work / name for name in ("alerts.jsonl", "events.jsonl", "agent.err")}
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(env_extra or {})
        cmd = [*(prefix or []), sys.executable, "-m", "kubeguard", "agent", "--sensor", sensor, "--pods", str(pods),
               "--alerts-out", str(paths["alerts.jsonl"]),
               *(["--events-out", str(paths["events.jsonl"])] if events_out else []),
               "--store", str(work / "alerts.db"), "--node", "kubeguard-test-node", *(extra or [])]
        with paths["agent.err"].open("wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        agent = cls(proc, work, paths["alerts.jsonl"], paths["events.jsonl"], paths["agent.err"])
        deadline = time.monotonic() + timeout
        while not re.search(r"^kubeguard agent: sensor \S+ running", agent.stderr(), re.M):
            if proc.poll() is not None or time.monotonic() > deadline:
                agent.kill()
                raise RuntimeError(f"agent did not start: {agent.stderr().strip()}")
            time.sleep(0.1)
        return agent

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert written so far (Falco JSON records)."""
        if self.alerts_path.exists():
            with self.alerts_path.open() as f:
                f.seek(self._offset)
                chunk = f.read()
            complete, _, _ = chunk.rpartition("\n")
            if complete:
                self._offset += len(complete.encode()) + 1
                self._seen.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        return list(self._seen)

    def alerts_for(self, container_id: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["output_fields"].get("container.id") == container_id]

    def wait_alert(self, rule: str, container_id: str, timeout: float = 15.0) -> dict[str, Any] | None:
        """The first alert of `rule` for the container, waiting up to `timeout` seconds; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            for alert in self.alerts_for(container_id):
                if alert["rule"] == rule:
                    return alert
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return None
            time.sleep(0.1)

    def events(self, container_id: str | None = None) -> list[dict[str, Any]]:
        """Events in the event log (complete lines only), optionally of one container."""
        if not self.events_path.exists():
            return []
        text = self.events_path.read_text(errors="replace")
        lines = text[: text.rfind("\n") + 1].splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [e for e in found if container_id is None or e.get("container.id") == container_id]

    def stop(self, timeout: float = 60.0) -> dict[str, int]:
        """SIGTERM and wait; returns the summary counters the agent printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        match = SUMMARY.search(self.stderr())
        if not match:
            return {}
        keys = ("events", "processed", "queue_drops", "kernel_lost", "alerts")
        return dict(zip(keys, (int(g) for g in match.groups()), strict=True))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def describe(alerts: list[dict[str, Any]]) -> str:
    """Short listing of alerts for failure messages."""
    return "; ".join(f"{a['rule']} [{a['output_fields'].get('proc.cmdline', '')}]" for a in alerts) or "none"
