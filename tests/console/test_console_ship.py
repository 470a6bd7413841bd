"""Many nodes: two agent processes ship to one console over HTTPS; the console is killed -9 mid-stream and
restarted; every alert they produced is stored exactly once (count and ids), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.console.conftest import free_port
from tests.console.consolelab import ConsoleProcess

from kubeguard.agent.shipper import ConsoleOutput, tls_context
from kubeguard.agent.spool import Spool
from kubeguard.console.auth import AuthStore
from kubeguard.model import Alert
from kubeguard.store.central import CentralQuery, CentralStore
from kubeguard.store.sqldb import Database

AGENT = Path(__file__).with_name("agent_proc.py")
PER_AGENT = 2000
RATE = 300  # alerts/s per agent: the stream lasts ~5 s, the kill lands in its middle


def ship_through_a_crash(db_url: str, tls_pair: tuple[Path, Path], work: Path) -> None:
    cert, key = tls_pair
    database = Database(db_url)
    auth = AuthStore(database)
    central = CentralStore(database)
    tokens = {}
    for node in ("node-a", "node-b"):
        tokens[node] = work / f"{node}.token"
        tokens[node].write_text(auth.create_api_token(node, "agent"))
    console = ConsoleProcess(db_url, cert, key, free_port(), work)
    console.start()
    agents = {node: subprocess.Popen(
        [sys.executable, str(AGENT), console.url, str(tokens[node]), str(cert), node, str(PER_AGENT), str(RATE),
         str(work / f"{node}.spool"), str(work / f"{node}.ids")], stdout=subprocess.PIPE, text=True)
        for node in tokens}
    try:
        deadline = time.monotonic() + 120
        while central.count() < 100 and time.monotonic() < deadline:  # the stream is flowing
            time.sleep(0.05)
        assert all(p.poll() is None for p in agents.values()), "the agents finished before the kill"
        console.kill9()
        killed_at = central.count()
        time.sleep(1.0)  # the agents keep raising alerts into their spools while the console is down
        console.start()
        summaries = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in agents.values()]
    finally:
        for p in agents.values():
            if p.poll() is None:
                p.kill()
        console.stop()
    produced = [line for node in tokens for line in (work / f"{node}.ids").read_text().split()]
    assert len(produced) == 2 * PER_AGENT and len(set(produced)) == len(produced)
    stored = central.uuids()
    assert len(stored) == len(produced), (len(stored), len(produced))
    assert set(stored) == set(produced)
    assert 0 < killed_at < len(produced)
    assert sum(s["failed_posts"] for s in summaries) > 0  # they did meet the dead console
    nodes = {a["node"]: a for a in central.agents()}
    assert set(nodes) == {"node-a", "node-b"} and all(a["spooled"] >= 0 for a in nodes.values())
    for node in tokens:
        assert central.count(CentralQuery(node=node)) == PER_AGENT


def test_two_agents_console_killed_sqlite(tmp_path, tls_pair) -> None:
    ship_through_a_crash(str(tmp_path / "console.db"), tls_pair, tmp_path)


def test_two_agents_console_killed_postgresql(tmp_path, tls_pair, postgres) -> None:
    ship_through_a_crash(postgres(), tls_pair, tmp_path)


def test_spool_is_bounded_and_counts_what_it_drops(tmp_path) -> None:
    spool = Spool(tmp_path / "spool.db", limit=5)
    spool.add([{"uuid": str(i)} for i in range(4)])
    assert spool.add([{"uuid": str(i)} for i in range(4, 8)]) == 3
    assert len(spool) == 5 and spool.dropped == 3
    assert [r["uuid"] for _, r in spool.peek(10)] == ["3", "4", "5", "6", "7"]
    spool.close()
    again = Spool(tmp_path / "spool.db", limit=5)
    assert again.dropped == 3 and len(again) == 5  # survives a restart


def test_unreachable_console_keeps_alerts_spooled_for_the_next_start(tmp_path, tls_pair) -> None:
    cert, _ = tls_pair
    spool = Spool(tmp_path / "spool.db")
    output = ConsoleOutput(f"https://127.0.0.1:{free_port()}", "kgt_x", spool, tls_context(cert), heartbeat=0.2,
                           poll=0.2, timeout=2.0)
    alerts = [Alert(rule="r", priority="Notice", output="o") for _ in range(3)]
    output.send(alerts)
    deadline = time.monotonic() + 60
    while output.failed_posts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    output.close(drain=0.5)
    kept = Spool(tmp_path / "spool.db")
    assert [r["uuid"] for _, r in kept.peek(10)] == [a.uuid for a in alerts] and output.failed_posts >= 2


def test_agent_flags_for_the_console_are_checked(tmp_path) -> None:
    run = subprocess.run([sys.executable, "-m", "kubeguard", "agent", "--console", "https://127.0.0.1:1",
                          "--store", str(tmp_path / "a.db")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--console-token-file" in run.stderr and "Traceback" not in run.stderr
    token = tmp_path / "t"
    token.write_text("kgt_x")
    run = subprocess.run([sys.executable, "-m", "kubeguard", "agent", "--console", "http://127.0.0.1:1",
                          "--console-token-file", str(token), "--store", str(tmp_path / "a.db")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "expected an https:// URL" in run.stderr


def test_mtls_console_refuses_agents_without_a_client_certificate(tmp_path, tls_pair) -> None:
    cert, key = tls_pair
    ca_key, ca = tmp_path / "ca.key", tmp_path / "ca.pem"
    client_key, client_csr, client = tmp_path / "c.key", tmp_path / "c.csr", tmp_path / "c.pem"
    ssl_run = [("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=kubeguard agents CA"),
               ("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(client_key),
                "-out", str(client_csr), "-subj", "/CN=node-a"),
               ("x509", "-req", "-in", str(client_csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                "-out", str(client), "-days", "2")]
    for args in ssl_run:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    db = str(tmp_path / "console.db")
    token = AuthStore(Database(db)).create_api_token("node-a", "agent")
    console = ConsoleProcess(db, cert, key, free_port(), tmp_path, ("--client-ca", str(ca)))
    with pytest.raises(AssertionError):  # /healthz without a client certificate: the handshake fails
        console.start(timeout=15)
    central = CentralStore(Database(db))
    try:
        outputs = {}
        for name, context in (("without", tls_context(cert)), ("with", tls_context(cert, client, client_key))):
            outputs[name] = ConsoleOutput(console.url, token, Spool(tmp_path / f"{name}.spool"), context,
                                          heartbeat=0.2, poll=0.2, timeout=5.0)
            outputs[name].send([Alert(rule=f"mtls {name}", priority="Notice", output="o")])
        deadline = time.monotonic() + 60
        while (outputs["with"].delivered < 1 or outputs["without"].failed_posts < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outputs["with"].delivered == 1 and outputs["without"].delivered == 0
        assert [a["rule"] for a in central.alerts()] == ["mtls with"]
    finally:
        for output in outputs.values():
            output.close(drain=0.2)
        console.stop()


def test_two_console_replicas_share_one_postgresql(tmp_path, tls_pair, postgres) -> None:
    cert, key = tls_pair
    url = postgres()
    replicas = [ConsoleProcess(url, cert, key, free_port(), tmp_path / name) for name in ("a", "b")]
    for replica in replicas:
        replica.work.mkdir()
    procs = []
    try:
        for replica in replicas:  # each checks / creates the schema under PostgreSQL's advisory lock
            procs.append(replica)
            replica.start()
        auth = AuthStore(Database(url))
        agent, reader = auth.create_api_token("node-a", "agent"), auth.create_api_token("script", "viewer")
        context = ssl.create_default_context(cafile=str(cert))

        def call(base: str, path: str, token: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return json.loads(answer.read())

        batch = [{"uuid": f"{i:032x}", "rule": "r", "priority": "Notice", "time": "2026-12-04T16:00:00Z"}
                 for i in range(50)]
        assert call(replicas[0].url, "/api/agent/batch", agent, {"alerts": batch})["stored"] == 50
        assert call(replicas[1].url, "/api/agent/batch", agent, {"alerts": batch})["duplicates"] == 50
        assert call(replicas[1].url, "/api/alerts", reader)["total"] == 50
    finally:
        for replica in procs:
            replica.stop()


def test_a_console_dying_mid_answer_does_not_end_shipping(tmp_path, tls_pair) -> None:
    """The console is killed after its headers and before its body (IncompleteRead): the shipper keeps the
    batch spooled and delivers it to the next answer, instead of its thread dying."""
    import socket
    import threading

    cert, key = tls_pair
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    delivered: list[int] = []

    def serve() -> None:
        answers = 0
        while not delivered:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += tls.recv(65536)
                head, body = request.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")) or 0)
                while len(body) < length:
                    body += tls.recv(65536)
                answers += 1
                if answers == 1:  # headers promise a body that never comes
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\nConnection: close\r\n\r\n")
                    tls.shutdown(socket.SHUT_RDWR)  # as a killed process's socket: closed at once
                    continue
                count = len(json.loads(body).get("alerts", [])) if head.startswith(b"POST") else 0
                reply = json.dumps({"stored": count, "modes": []}).encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                            b"Content-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply)
                if count:
                    delivered.append(count)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    output = ConsoleOutput(f"https://127.0.0.1:{port}", "kgt_x", Spool(tmp_path / "spool.db"), tls_context(cert),
                           heartbeat=3600.0, poll=3600.0, timeout=7.0)
    output.send([Alert(rule="r", priority="Notice", output="o") for _ in range(3)])
    thread.join(120)
    output.close(drain=5.0)
    listener.close()
    assert delivered == [3] and output.failed_posts >= 1 and output.delivered == 3
