"""Alert ingest rate of the console's central store, into SQLite and into PostgreSQL, from N concurrent agents.

Two layers, each against the same peer measured in the same run:
- **store**: N agent processes each call `CentralStore.add_alerts` with batches of 1,000 alerts (unique
  ids; PostgreSQL: COPY straight into the table, or through a temp table and ``ON CONFLICT DO NOTHING``
  when a batch carries an id already stored);
- **end to end**: N agent processes post the same batches to a real `kubeguard console` process
  (one uvicorn worker) over HTTPS with keep-alive, exactly as `kubeguard agent --console` does;
- **peer**: PostgreSQL's own bulk path, ``COPY`` of the same rows into an identical table without the
  uniqueness check (the database's ceiling on this machine).
PostgreSQL is a throw-away Debian server (tests/pglab.py) with its default durability (fsync on,
synchronous_commit on); SQLite runs in WAL mode with synchronous=FULL. Root is needed for PostgreSQL
(it runs as the postgres user); without it only SQLite is measured.

Run: `PYTHONPATH=src:. python -m bench.console_ingest [--agents N] [--alerts PER_AGENT]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.pglab import PostgresUnavailable, TempPostgres, free_port

from bench.record import record
from kubeguard.console.auth import AuthStore
from kubeguard.store.central import ALERT_COLUMNS, CentralStore
from kubeguard.store.sqldb import Database

BATCH = 1000


def alerts(node: str, n: int) -> list[dict[str, Any]]:
    """Realistic Falco alerts (about 700 bytes of JSON each) with unique ids."""
    out = []
    for i in range(n):
        pod = f"web-7d4b9c6f8d-{i % 97:05d}"
        out.append({"uuid": uuid.uuid4().hex, "rule": "Terminal shell in container", "priority": "Notice",
                    "time": f"2026-12-04T16:{(i // 60) % 60:02d}:{i % 60:02d}.{i:09d}Z", "source": "syscall",
                    "hostname": node, "tags": ["container", "shell", "mitre_execution", "T1059"],
                    "output": f"A shell was spawned in a container (user=root shell=bash parent=runc pod={pod})",
                    "output_fields": {"k8s.ns.name": f"ns-{i % 13}", "k8s.pod.name": pod, "container.id": "c0ffee" * 2,
                                      "container.name": "web", "container.image": "registry.example/web:1.4",
                                      "proc.name": "bash", "proc.pname": "runc", "proc.cmdline": "bash -i",
                                      "user.name": "root", "evt.type": "execve", "k8s.node.name": node}})
    return out


def store_agent(db_url: str, node: str, n: int, ready: Any, go: Any, out: Any) -> None:
    """One agent process writing straight into the store."""
    central = CentralStore(Database(db_url))
    batches = [[central.alert_row(a, node, "2026-12-04T16:00:00Z") for a in alerts(node, n)[i:i + BATCH]]
               for i in range(0, n, BATCH)]
    ready.release()
    go.wait()
    began = time.perf_counter()
    stored = sum(central.add_alerts(batch) for batch in batches)
    out.put((stored, time.perf_counter() - began))


def http_agent(port: int, token: str, ca: str, node: str, n: int, ready: Any, go: Any, out: Any) -> None:
    """One agent process posting batches to the console over HTTPS (one kept-alive connection)."""
    bodies = [json.dumps({"alerts": batch}).encode() for batch in
              (alerts(node, n)[i:i + BATCH] for i in range(0, n, BATCH))]
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=ca), timeout=300)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    ready.release()
    go.wait()
    began = time.perf_counter()
    stored = 0
    for body in bodies:
        conn.request("POST", "/api/agent/batch", body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise SystemExit(f"console answered {answer.status}: {data[:200]!r}")
        stored += json.loads(data)["stored"]
    out.put((stored, time.perf_counter() - began))


def run_agents(target: Any, args_of: Any, agents: int) -> tuple[int, float]:
    """Start `agents` processes, release them together; (alerts stored, wall seconds of the slowest)."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(i), ready, go, out)) for i in range(agents)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    began = time.perf_counter()
    go.set()
    results = [out.get(timeout=1800) for _ in procs]
    wall = time.perf_counter() - began
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    return sum(r[0] for r in results), wall


def copy_peer(db_url: str, rows: int) -> float:
    """Seconds for PostgreSQL's COPY of `rows` alert rows into an identical table without the unique index."""
    import psycopg

    data = [CentralStore.alert_row(a, "peer", "2026-12-04T16:00:00Z") for a in alerts("peer", rows)]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE copy_peer (LIKE central_alerts INCLUDING DEFAULTS)")
        conn.execute("ALTER TABLE copy_peer DROP COLUMN id")
        began = time.perf_counter()
        for i in range(0, rows, BATCH):
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                    f"COPY copy_peer ({', '.join(ALERT_COLUMNS)}) FROM STDIN") as copy:
                for row in data[i:i + BATCH]:
                    copy.write_row(row)
        return time.perf_counter() - began


def console_run(db_url: str, work: Path, agents: int, per_agent: int) -> tuple[int, float]:
    cert, key = work / "cert.pem", work / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    auth = AuthStore(Database(db_url))
    tokens = [auth.create_api_token(f"node-{i}", "agent") for i in range(agents)]
    port = free_port()
    console = subprocess.Popen([sys.executable, "-m", "kubeguard", "console", "--db", db_url, "--port", str(port),
                                "--tls-cert", str(cert), "--tls-key", str(key)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                probe = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                                    context=ssl.create_default_context(cafile=str(cert)))
                probe.request("GET", "/healthz")
                if probe.getresponse().read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        return run_agents(http_agent, lambda i: (port, tokens[i], str(cert), f"node-{i}", per_agent), agents)
    finally:
        console.terminate()
        console.wait(timeout=60)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.console_ingest")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--alerts", type=int, default=25_000, help="alerts per agent")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kg-ingest-"))
    total = args.agents * args.alerts
    rows: list[tuple[str, str, int, float]] = []
    server = None
    try:
        server = TempPostgres("-c synchronous_commit=on -c fsync=on")
        server.start()
    except PostgresUnavailable as exc:
        print(f"bench.console_ingest: PostgreSQL lane skipped ({exc})", flush=True)
        server = None
    try:
        lanes = [("SQLite (WAL, synchronous=FULL)", lambda: str(work / f"s{time.monotonic_ns()}.db"))]
        if server is not None:
            lanes.append(("PostgreSQL 15 (fsync on)", server.new_database))
        for label, new_db in lanes:
            url = new_db()
            CentralStore(Database(url))
            stored, wall = run_agents(store_agent, lambda i, u=url: (u, f"node-{i}", args.alerts), args.agents)
            assert stored == total, (stored, total)
            rows.append((label, "store (CentralStore.add_alerts)", stored, wall))
            print(f"{label}: store {stored / wall:,.0f} alerts/s", flush=True)
            url = new_db()
            CentralStore(Database(url))
            stored, wall = console_run(url, work, args.agents, args.alerts // 5)
            assert stored == total // 5, (stored, total)
            rows.append((label, "end to end (HTTPS -> kubeguard console)", stored, wall))
            print(f"{label}: console {stored / wall:,.0f} alerts/s", flush=True)
        peer = None
        if server is not None:
            url = server.new_database()
            CentralStore(Database(url))
            peer_rows = min(total, 100_000)
            peer = (peer_rows, copy_peer(url, peer_rows))
            print(f"peer: COPY {peer[0] / peer[1]:,.0f} rows/s", flush=True)
    finally:
        if server is not None:
            server.stop()
    table = ["| store | path | alerts | wall time | alerts/s |", "|---|---|---|---|---|"]
    table += [f"| {label} | {path} | {n:,} | {wall:.2f} s | **{n / wall:,.0f}** |" for label, path, n, wall in rows]
    if peer is not None:
        table.append(f"| PostgreSQL 15 (fsync on) | peer: COPY, no unique check, 1 connection | {peer[0]:,} | "
                     f"{peer[1]:.2f} s | {peer[0] / peer[1]:,.0f} |")
    pg_store = next((n / w for label, path, n, w in rows if label.startswith("PostgreSQL") and "store" in path), None)
    verdict = ""
    if pg_store is not None and peer is not None:
        verdict = (f"\n\nInto PostgreSQL the store takes **{pg_store:,.0f} alerts/s** from {args.agents} concurrent "
                   f"agents (goal >= 20,000/s), {pg_store / (peer[0] / peer[1]):.2f}x the rate of a bare COPY "
                   "without the uniqueness check. The end-to-end figure is bounded by one console process "
                   "parsing and validating JSON on a shared 2-core machine; replicas behind the Service add to it.")
    record("console_ingest", f"## Console ingest (`python -m bench.console_ingest`)\n\n{args.agents} concurrent agent "
           f"processes, batches of {BATCH:,} alerts (~700 bytes of Falco JSON each, unique ids, duplicates "
           "skipped by a UNIQUE index). End to end: each agent posts over HTTPS with keep-alive to one "
           "`kubeguard console` process, a fifth of the store run's alerts.\n\n" + "\n".join(table) + verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
