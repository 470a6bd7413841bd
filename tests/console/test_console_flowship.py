"""The agent's flow shipping: connect/accept events aggregated per window, spooled, posted to the console while
it is killed -9 and restarted; every aggregated record is stored once and the flow map counts them all."""

from __future__ import annotations

import time
from pathlib import Path

from tests.console.conftest import free_port
from tests.console.consolelab import ConsoleProcess

from kubeguard.agent.flowship import FlowAggregator
from kubeguard.agent.shipper import ConsoleOutput, tls_context
from kubeguard.agent.spool import Spool
from kubeguard.console.auth import AuthStore
from kubeguard.model import Event
from kubeguard.net import flowmap
from kubeguard.store.central import CentralStore
from kubeguard.store.sqldb import Database


def connect(n: int) -> Event:
    return Event({"evt.type": "connect", "fd.type": "ipv4", "evt.rawres": 0, "fd.cip": "10.0.0.5",
                  "fd.sip": f"10.0.1.{n % 3}", "fd.sport": 5432, "fd.l4proto": "tcp",
                  "k8s.ns.name": "shop", "k8s.pod.name": "web-1"})


def test_aggregator_counts_per_key_and_skips_host_and_failed() -> None:
    shipped: list[dict] = []
    agg = FlowAggregator(shipped.extend, "node-a", window=3600)
    for i in range(30):
        agg.observe(connect(i))
    agg.observe(Event({**connect(0), "k8s.pod.name": ""}))  # a host process: not a pod flow
    agg.observe(Event({**connect(0), "evt.rawres": -111}))  # refused
    agg.observe(Event({**connect(0), "evt.type": "accept", "k8s.pod.name": "db-0"}))
    assert agg.flush() == 0  # the window has not ended
    assert agg.flush(force=True) == 4
    counts = {(r["fd.sip"], r.get("net.server.pod", "")): r["flow.count"] for r in shipped}
    assert counts == {("10.0.1.0", ""): 10, ("10.0.1.1", ""): 10, ("10.0.1.2", ""): 10, ("10.0.1.0", "shop/db-0"): 1}
    assert len({r["flow.id"] for r in shipped}) == 4
    edges = {e["to"]: e["flows"] for e in flowmap.from_records(shipped).to_dict()["edges"]}
    assert edges == {"10.0.1.0": 10, "10.0.1.1": 10, "10.0.1.2": 10, "shop/Pod/db-0": 1}


def test_flows_survive_a_console_kill_and_are_stored_once(tmp_path: Path, tls_pair) -> None:
    cert, key = tls_pair
    db_url = str(tmp_path / "console.db")
    database = Database(db_url)
    central = CentralStore(database)
    token = AuthStore(database).create_api_token("node-a", "agent")
    console = ConsoleProcess(db_url, cert, key, free_port(), tmp_path)
    console.start()
    output = ConsoleOutput(console.url, token, Spool(tmp_path / "s.db"), tls_context(cert), heartbeat=1.0, poll=1.0,
                           timeout=5.0, flows=Spool(tmp_path / "s.db", table="flow_spool"))
    agg = FlowAggregator(output.send_flows, "node-a", window=3600)
    try:
        for i in range(9):
            agg.observe(connect(i))
        agg.flush(force=True)
        deadline = time.monotonic() + 60
        while output.flows_sent < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert output.flows_sent == 3
        console.kill9()
        for i in range(6):
            agg.observe(connect(i))
        agg.flush(force=True)  # spooled while the console is down
        time.sleep(1.0)
        assert len(output.flows) == 3
        # the same batch again (a resend after a lost answer): stored once
        first = [rec for rec in central.flows(100)]
        output.send_flows(first)
        console.start()
        deadline = time.monotonic() + 60
        while len(output.flows) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(output.flows) == 0 and output.failed_posts > 0
    finally:
        output.close(drain=30)
        console.stop()
    stored = central.flows(100)
    assert len(stored) == 6 and len({r["flow.id"] for r in stored}) == 6
    edges = {e["to"]: e["flows"] for e in flowmap.from_records(stored).to_dict()["edges"]}
    assert edges == {"10.0.1.0": 5, "10.0.1.1": 5, "10.0.1.2": 5}


def test_flow_spool_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", limit=5, table="flow_spool")
    alerts = Spool(tmp_path / "s.db")
    spool.add([{"n": i} for i in range(8)])
    assert len(spool) == 5 and spool.dropped == 3 and len(alerts) == 0 and alerts.dropped == 0
    spool.close()
    assert Spool(tmp_path / "s.db", limit=5, table="flow_spool").dropped == 3


def test_flow_ids_stored_once_postgresql(postgres) -> None:
    central = CentralStore(Database(postgres()))
    records = [{"fd.cip": "10.0.0.5", "fd.sip": "10.0.1.1", "fd.sport": 80, "flow.count": 2, "flow.id": f"id{i}"}
               for i in range(3)]
    assert central.add_flows("node-a", "now", records) == 3
    assert central.add_flows("node-a", "now", records) == 0
    assert central.add_flows("node-a", "now", [{"fd.cip": "1.2.3.4", "fd.sip": "10.0.1.1", "fd.sport": 80}] * 2) == 2
    assert len(central.flows(100)) == 5
