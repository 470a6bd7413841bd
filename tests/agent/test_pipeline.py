"""The pipeline: events through enrichment and rules to store + outputs; drops counted and alerted; gaps."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from kubeguard.agent.enrich import Enricher
from kubeguard.agent.metrics import AgentMetrics, MetricsServer
from kubeguard.agent.outputs import JsonLinesOutput
from kubeguard.agent.pipeline import DROP_RULE, GAP_RULE, EventLog, Pipeline
from kubeguard.agent.podsource import PodSource
from kubeguard.agent.proctable import ProcessTable
from kubeguard.cliutil import UserError
from kubeguard.model import Alert, Event
from kubeguard.store.alerts import AlertStore


class MinerRule:
    """A one-rule stand-in for the rule engine's interface: alerts on execs of a binary named xmrig."""

    def __init__(self, delay: threading.Event | None = None) -> None:
        self.gate = delay
        self.seen = 0

    def process(self, event: Event) -> list[Alert]:
        if self.gate is not None:
            self.gate.wait()
        self.seen += 1
        if event.get("evt.type") == "execve" and event.get("proc.name") == "xmrig":
            return [Alert(rule="Detect crypto miners", priority="Critical", output=f"miner {event['proc.cmdline']}",
                          output_fields={k: event.get(k) for k in ("proc.cmdline", "proc.pname", "container.id")},
                          tags=["T1496"])]
        return []


def enricher() -> Enricher:
    return Enricher(PodSource(), procs=ProcessTable(proc=Path("/nonexistent")))


def execve(pid: int, name: str, ppid: int = 1) -> Event:
    return Event({"evt.type": "execve", "evt.dir": "<", "proc.pid": pid, "proc.ppid": ppid, "proc.name": name,
                  "proc.args": "-o pool:3333", "_cgroup_path": "/system.slice/x.service", "_cgroup_id": 1})


def test_events_flow_to_store_outputs_and_event_log(tmp_path: Path) -> None:
    store, alerts_file, events_file = tmp_path / "a.db", tmp_path / "alerts.jsonl", tmp_path / "events.jsonl"
    pipe = Pipeline(enricher(), MinerRule(), [JsonLinesOutput(alerts_file)], store_path=store,
                    events_out=events_file, hostname="node-1")
    pipe.start()
    pipe.submit(execve(10, "bash"))
    pipe.submit(execve(11, "xmrig", ppid=10))
    pipe.submit(Event({"evt.type": "procexit", "proc.pid": 11}))
    pipe.stop()
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["evt.type"] for e in events] == ["execve", "execve", "procexit"]
    assert not any(k.startswith("_") for e in events for k in e)
    assert events[1]["proc.aname"][:2] == ["xmrig", "bash"] and events[1]["container.id"] == "host"
    lines = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert [a["rule"] for a in lines] == ["Detect crypto miners"]
    assert lines[0]["output_fields"]["proc.pname"] == "bash" and lines[0]["hostname"] == "node-1"
    with AlertStore(store) as db:
        assert [a.rule for a in db.alerts()] == ["Detect crypto miners"]


def test_overload_drops_are_counted_by_type_and_alerted(tmp_path: Path) -> None:
    gate = threading.Event()
    rules = MinerRule(delay=gate)
    metrics = AgentMetrics()
    pipe = Pipeline(enricher(), rules, store_path=tmp_path / "a.db", metrics=metrics, queue_size=4,
                    drop_report_interval=3600, sensor_stats=lambda: {"ebpf": {"lost": 7}})
    pipe.start()
    for i in range(50):
        pipe.submit(execve(1000 + i, "sh"))  # never blocks, even though the worker is stuck
    for _ in range(20):
        pipe.submit(Event({"evt.type": "connect", "proc.pid": 5}))
    gate.set()
    pipe.stop()
    accepted = rules.seen
    assert pipe.total_dropped == 70 - accepted and pipe.total_dropped > 0
    assert pipe.dropped["connect"] == 20 and pipe.dropped["execve"] == 50 - accepted
    with AlertStore(tmp_path / "a.db") as db:
        drops = [a for a in db.alerts() if a.rule == DROP_RULE]
    assert len(drops) == 1
    fields = drops[0].output_fields
    assert fields["n_drops_queue"] == pipe.total_dropped and fields["n_drops_buffer"] == 7
    assert fields["n_drops"] == pipe.total_dropped + 7
    assert fields["n_drops_by_type_total"] == {"connect": 20, "execve": 50 - accepted}
    text = metrics.render().decode()
    assert 'kubeguard_agent_drops_total{type="connect"} 20.0' in text
    assert 'kubeguard_agent_kernel_lost{sensor="ebpf"} 7.0' in text
    assert 'kubeguard_agent_events_total{type="execve"} 50.0' in text


def test_no_drop_alert_without_drops(tmp_path: Path) -> None:
    pipe = Pipeline(enricher(), MinerRule(), store_path=tmp_path / "a.db", drop_report_interval=0.0)
    pipe.start()
    for i in range(20):
        pipe.submit(execve(2000 + i, "sh"))
    pipe.stop()
    with AlertStore(tmp_path / "a.db") as db:
        assert db.count_alerts() == 0


def test_sensor_gap_becomes_an_alert(tmp_path: Path) -> None:
    pipe = Pipeline(enricher(), MinerRule(), store_path=tmp_path / "a.db")
    pipe.start()
    pipe.on_gap("ebpf", 1_800_000_000_000_000_000, 1_800_000_001_500_000_000, "bpftrace exited with status 1")
    pipe.stop()
    with AlertStore(tmp_path / "a.db") as db:
        (gap,) = list(db.alerts())
    assert gap.rule == GAP_RULE and gap.priority == "Critical"
    assert gap.output_fields["gap.seconds"] == 1.5
    assert "bpftrace exited with status 1" in gap.output


def test_rule_errors_do_not_stop_the_pipeline(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def process(self, event: Event) -> list[Alert]:
            raise ValueError("boom")

    pipe = Pipeline(enricher(), Broken(), events_out=tmp_path / "e.jsonl")
    pipe.start()
    for i in range(5):
        pipe.submit(execve(3000 + i, "sh"))
    pipe.stop()
    assert pipe.rule_errors == 5 and pipe.processed == 5
    assert sum("rule engine failed" in r.getMessage() for r in caplog.records) == 1


def test_unwritable_store_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    pipe = Pipeline(enricher(), MinerRule(), store_path=blocker / "a.db")
    with pytest.raises(UserError, match="cannot open alert store"):
        pipe.start()


def test_metrics_endpoint_serves_and_guards() -> None:
    metrics = AgentMetrics()
    metrics.alerts.labels("Detect crypto miners", "Critical").inc()
    server = MetricsServer(metrics, 0, token="t0ken")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=5)
        assert denied.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer t0ken"})
        body = urllib.request.urlopen(request, timeout=5).read().decode()
        assert 'kubeguard_agent_alerts_total{priority="Critical",rule="Detect crypto miners"} 1.0' in body
    finally:
        server.close()
    with pytest.raises(UserError, match="needs a token"):
        MetricsServer(metrics, 0, host="0.0.0.0")


def test_port_scan_is_detected_once_per_window_and_single_target_traffic_is_not() -> None:
    from kubeguard.agent.portscan import PORT_SCAN_RULE, PortScanDetector

    detector = PortScanDetector(threshold=20, window=10)
    base = {"evt.type": "connect", "container.id": "ab" * 32, "fd.type": "ipv4", "fd.rip": "10.0.0.9",
            "k8s.ns.name": "shop", "k8s.pod.name": "scanner"}
    busy_client = [detector.process(Event(base | {"proc.pid": 1, "fd.rport": 8080})) for _ in range(500)]
    assert not any(busy_client)
    scan = [detector.process(Event(base | {"proc.pid": 2, "fd.rport": port, "evt.rawres": -111}))
            for port in range(1, 201)]
    raised = [a for alerts in scan for a in alerts]
    assert [a.rule for a in raised] == [PORT_SCAN_RULE]
    assert raised[0].output_fields["scan.targets"] == 20 and "T1046" in raised[0].tags
    host = base | {"container.id": "host", "proc.pid": 3}
    assert not any(detector.process(Event(host | {"fd.rport": p})) for p in range(1, 100))


def test_events_log_lines_strip_internal_keys_and_show_other_values_as_text(tmp_path) -> None:
    """The events log (the replay format): internal ``_`` keys left out, the event itself untouched, values JSON
    cannot hold written as their text, and events without internal keys written as they are."""
    log = EventLog(tmp_path / "e.jsonl")
    with_internal = Event({"evt.type": "execve", "_env_truncated": True, "proc.env": "A=1", "fd.name": Path("/x")})
    plain = Event({"evt.type": "procexit", "proc.pid": 7, "proc.aname": ["sh", "bash"]})
    other = Event({"evt.type": "open", "_cgroup_id": 5, "_fanotify_mask": 32, "Z.upper": 1, "fd.name": "_x"})
    log.write(with_internal)
    log.write(plain)
    log.write(other)  # a sensor's internal key beside the usual ones, a key sorting before "_"
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert lines == [{"evt.type": "execve", "proc.env": "A=1", "fd.name": "/x"},
                     {"evt.type": "procexit", "proc.pid": 7, "proc.aname": ["sh", "bash"]},
                     {"evt.type": "open", "Z.upper": 1, "fd.name": "_x"}]
    assert with_internal["_env_truncated"] is True
    assert log.written == 3


def test_events_log_lines_keep_text_as_utf8_and_integers_beyond_64_bits(tmp_path) -> None:
    """orjson writes the lines; what it refuses (an integer over 64 bits) is written by the json module: every
    line parses back to the same values, one per line."""
    log = EventLog(tmp_path / "e.jsonl")
    events = [Event({"proc.cmdline": "grep é\n\"x\"", "evt.arg.mask": 2**64 - 1}), Event({"evt.arg.big": 2**70})]
    for event in events:
        log.write(event)
    log.close()
    raw = (tmp_path / "e.jsonl").read_bytes()
    assert "é".encode() in raw and raw.count(b"\n") == 2
    assert [json.loads(line) for line in raw.decode().splitlines()] == [dict(e) for e in events]
