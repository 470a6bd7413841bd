"""The console's central store: alerts from many nodes, agent health, findings, attack paths, flows, policy modes.

Every alert carries a stable id (``uuid``, set where the alert was raised); the column is UNIQUE and
inserts skip ids already stored, so an agent that resends a batch after a timeout or a console crash
never stores an alert twice. A batch is one transaction: when `add_alerts` returns, the alerts are
durable (SQLite ``synchronous=FULL``; PostgreSQL's default ``synchronous_commit``), and only then does
the console answer the agent, which only then forgets them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeguard.store.sqldb import Database

MODES = ("discover", "monitor", "protect")

SCHEMA = """
CREATE TABLE IF NOT EXISTS central_alerts (
    id {pk},
    uuid TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    rule TEXT NOT NULL,
    priority TEXT NOT NULL,
    severity INTEGER NOT NULL,
    source TEXT NOT NULL,
    hostname TEXT NOT NULL,
    node TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    workload TEXT NOT NULL,
    container TEXT NOT NULL,
    image TEXT NOT NULL,
    output TEXT NOT NULL,
    output_fields TEXT NOT NULL,
    tags TEXT NOT NULL,
    received TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS central_alerts_time ON central_alerts(time);
CREATE INDEX IF NOT EXISTS central_alerts_rule ON central_alerts(rule);
CREATE INDEX IF NOT EXISTS central_alerts_ns ON central_alerts(namespace, workload);
CREATE TABLE IF NOT EXISTS central_agents (
    node TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    events_per_s {real} NOT NULL,
    drops {bigint} NOT NULL,
    alerts_sent {bigint} NOT NULL,
    spooled {bigint} NOT NULL,
    spool_dropped {bigint} NOT NULL,
    stats TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS central_findings (
    id {pk},
    scan TEXT NOT NULL,
    time TEXT NOT NULL,
    check_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    namespace TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS central_findings_scan ON central_findings(scan);
CREATE TABLE IF NOT EXISTS central_paths (
    id {pk},
    scan TEXT NOT NULL,
    time TEXT NOT NULL,
    node TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS central_flows (
    id {pk},
    uid TEXT,
    node TEXT NOT NULL,
    received TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workload_modes (
    namespace TEXT NOT NULL,
    workload TEXT NOT NULL,
    mode TEXT NOT NULL,
    updated TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (namespace, workload)
);
CREATE TABLE IF NOT EXISTS pod_quarantines (
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    frozen INTEGER NOT NULL,  -- 'freeze' is reserved in PostgreSQL
    requested TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    PRIMARY KEY (namespace, pod)
)
"""

INCOMING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_alerts (uuid TEXT, time TEXT, rule TEXT, priority TEXT, severity INTEGER,"
    " source TEXT, hostname TEXT, node TEXT, namespace TEXT, pod TEXT, workload TEXT, container TEXT, image TEXT,"
    " output TEXT, output_fields TEXT, tags TEXT, received TEXT) ON COMMIT DELETE ROWS"
)
ALERT_COLUMNS = ("uuid", "time", "rule", "priority", "severity", "source", "hostname", "node", "namespace", "pod",
                 "workload", "container", "image", "output", "output_fields", "tags", "received")
_POD_SUFFIX = re.compile(r"(-[a-f0-9]{6,10})?-[a-z0-9]{5}$")
_STATEFUL_SUFFIX = re.compile(r"-\d+$")


def workload_name(fields: dict[str, Any]) -> str:
    """The workload (Deployment, DaemonSet, ...) an alert's pod belongs to.

    Falco's ``k8s.deployment.name`` and friends when present, else the pod name without the
    ReplicaSet / pod hash (``web-7d4b9c6f8d-x2x9z`` -> ``web``) or StatefulSet ordinal.
    """
    for key in ("k8s.deployment.name", "k8s.daemonset.name", "k8s.statefulset.name", "k8s.job.name"):
        if fields.get(key):
            return str(fields[key])
    pod = str(fields.get("k8s.pod.name") or "")
    if not pod:
        return ""
    stripped = _POD_SUFFIX.sub("", pod)
    if stripped == pod:
        stripped = _STATEFUL_SUFFIX.sub("", pod)
    return stripped or pod


@dataclass(frozen=True, slots=True)
class CentralQuery:
    """Filters of the alert list; empty means no filter. Times are RFC 3339 prefixes (compared as text)."""

    rule: str = ""
    priority: str = ""
    namespace: str = ""
    workload: str = ""
    node: str = ""
    since: str = ""
    until: str = ""
    limit: int = 200
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("rule", "priority", "namespace", "workload", "node"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since:
            clauses.append("time >= ?")
            params.append(self.since)
        if self.until:
            clauses.append("time < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass(slots=True)
class AgentReport:
    """One agent's heartbeat."""

    node: str
    version: str = ""
    events_per_s: float = 0.0
    drops: int = 0
    alerts_sent: int = 0
    spooled: int = 0
    spool_dropped: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


class CentralStore:
    """Alerts, agents, findings and policy modes in one database shared by console replicas."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.create_schema(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added after a table first shipped (a database made by an older console gets them)."""
        if self.db.dialect == "postgresql":
            statements = ["ALTER TABLE central_flows ADD COLUMN IF NOT EXISTS uid TEXT"]
        else:
            columns = {str(row[1]) for row in self.db.query("PRAGMA table_info(central_flows)")}
            statements = [] if "uid" in columns else ["ALTER TABLE central_flows ADD COLUMN uid TEXT"]
        statements.append("CREATE UNIQUE INDEX IF NOT EXISTS central_flows_uid ON central_flows (uid)")
        self.db.create_schema(";".join(statements))

    # --- alerts -------------------------------------------------------------------------------------
    @staticmethod
    def alert_row(record: dict[str, Any], node: str, received: str) -> tuple[Any, ...]:
        """A Falco JSON alert (with ``uuid``) as a row; ValueError when a required key is missing."""
        from kubeguard.model import FALCO_PRIORITY_SEVERITY, falco_priority_name

        uuid = str(record.get("uuid") or "")
        if not uuid or len(uuid) > 128:
            raise ValueError("alert without a uuid")
        fields = record.get("output_fields") or {}
        if not isinstance(fields, dict):
            raise ValueError("output_fields is not an object")
        priority = falco_priority_name(str(record.get("priority") or "Warning"))
        row = (
            uuid, str(record.get("time") or received), str(record["rule"]), priority,
            int(FALCO_PRIORITY_SEVERITY[priority.upper()]), str(record.get("source") or "syscall"),
            str(record.get("hostname") or node), str(fields.get("k8s.node.name") or node),
            str(fields.get("k8s.ns.name") or ""), str(fields.get("k8s.pod.name") or ""), workload_name(fields),
            str(fields.get("container.name") or ""), str(fields.get("container.image") or ""),
            str(record.get("output") or ""), json.dumps(fields, default=str),
            json.dumps([str(t) for t in record.get("tags") or []]), received,
        )
        return tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in row)  # PostgreSQL text has no NUL

    def add_alerts(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert rows from `alert_row` in one transaction; ids already stored are skipped. Returns new rows."""
        if not rows:
            return 0
        if self.db.dialect == "postgresql":
            return self._add_alerts_postgresql(rows)
        marks = ",".join("?" * len(ALERT_COLUMNS))
        with self.db.transaction() as tx:
            before = tx.changes()
            tx.executemany(f"INSERT INTO central_alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({marks})"
                           " ON CONFLICT (uuid) DO NOTHING", rows)
            return tx.changes() - before

    def _add_alerts_postgresql(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """COPY the batch straight into the table (a savepoint; the usual case: no id stored yet); when the
        UNIQUE index refuses an id (a resent batch), COPY into a per-session temp table instead and keep only
        new ids with one INSERT ... SELECT ... ON CONFLICT DO NOTHING. COPY is ~5x multi-row INSERTs.
        Rows go in in id order: two replicas storing overlapping batches wait on each other's ids in the same
        order and never deadlock."""
        from psycopg.errors import UniqueViolation

        names = ", ".join(ALERT_COLUMNS)
        rows = sorted(rows, key=lambda row: str(row[0]))
        with self.db.transaction() as tx:
            conn = tx.connection
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(
                        f"COPY central_alerts ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            except UniqueViolation:
                pass  # some id is stored already: the savepoint is rolled back, sort them out below
            conn.execute(INCOMING_TABLE)
            with conn.cursor() as cur, cur.copy(f"COPY incoming_alerts ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return int(conn.execute(f"INSERT INTO central_alerts ({names}) SELECT {names} FROM incoming_alerts"
                                    " ORDER BY uuid"
                                    " ON CONFLICT (uuid) DO NOTHING").rowcount)

    def alerts(self, query: CentralQuery = CentralQuery()) -> list[dict[str, Any]]:
        """Matching alerts, newest first."""
        where, params = query.where()
        rows = self.db.query(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM central_alerts{where} ORDER BY time DESC, id DESC"
            " LIMIT ? OFFSET ?", [*params, int(query.limit), int(query.offset)])
        return [self._record(row) for row in rows]

    def count(self, query: CentralQuery = CentralQuery()) -> int:
        where, params = query.where()
        return int(self.db.query(f"SELECT COUNT(*) FROM central_alerts{where}", params)[0][0])

    def alert(self, uuid: str) -> dict[str, Any] | None:
        rows = self.db.query(f"SELECT {', '.join(ALERT_COLUMNS)} FROM central_alerts WHERE uuid = ?", [uuid])
        return self._record(rows[0]) if rows else None

    def uuids(self) -> list[str]:
        return [row[0] for row in self.db.query("SELECT uuid FROM central_alerts")]

    def timeline(self, query: CentralQuery, prefix: int) -> list[tuple[str, int]]:
        """Alert counts per time bucket, the bucket being the first `prefix` characters of the time."""
        where, params = query.where()
        return [(str(b), int(n)) for b, n in self.db.query(
            f"SELECT SUBSTR(time, 1, {int(prefix)}) AS b, COUNT(*) FROM central_alerts{where} GROUP BY b ORDER BY b",
            params)]

    def facets(self) -> dict[str, list[str]]:
        """Distinct values of the filter columns (for the filter menus), at most 200 each."""
        out: dict[str, list[str]] = {}
        for column in ("rule", "priority", "namespace", "workload", "node"):
            out[column] = [str(r[0]) for r in self.db.query(
                f"SELECT DISTINCT {column} FROM central_alerts WHERE {column} <> '' ORDER BY {column} LIMIT 200")]
        return out

    @staticmethod
    def _record(row: tuple[Any, ...]) -> dict[str, Any]:
        record = dict(zip(ALERT_COLUMNS, row, strict=True))
        record["output_fields"] = json.loads(record["output_fields"])
        record["tags"] = json.loads(record["tags"])
        return record

    # --- agents -------------------------------------------------------------------------------------
    def heartbeat(self, report: AgentReport, now: str) -> None:
        values = (report.version, now, float(report.events_per_s), int(report.drops), int(report.alerts_sent),
                  int(report.spooled), int(report.spool_dropped), json.dumps(report.stats, default=str))
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO central_agents (node, version, last_seen, events_per_s, drops, alerts_sent, spooled,"
                " spool_dropped, stats) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (node) DO UPDATE SET"
                " version = excluded.version, last_seen = excluded.last_seen, events_per_s = excluded.events_per_s,"
                " drops = excluded.drops, alerts_sent = excluded.alerts_sent, spooled = excluded.spooled,"
                " spool_dropped = excluded.spool_dropped, stats = excluded.stats", (report.node, *values))

    def agents(self) -> list[dict[str, Any]]:
        names = ("node", "version", "last_seen", "events_per_s", "drops", "alerts_sent", "spooled", "spool_dropped",
                 "stats")
        rows = self.db.query(f"SELECT {', '.join(names)} FROM central_agents ORDER BY node")
        out = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record["stats"] = json.loads(record["stats"])
            out.append(record)
        return out

    # --- findings -----------------------------------------------------------------------------------
    def add_findings(self, scan: str, time: str, findings: Iterable[dict[str, Any]]) -> int:
        rows = []
        for f in findings:
            resource = f.get("resource") or {}
            rows.append((scan, time, str(f.get("check") or ""), str(f.get("severity") or ""),
                         str(resource.get("namespace") or "") if isinstance(resource, dict) else "",
                         json.dumps(f, default=str)))
        with self.db.transaction() as tx:
            tx.executemany("INSERT INTO central_findings (scan, time, check_id, severity, namespace, data)"
                           " VALUES (?,?,?,?,?,?)", rows)
        return len(rows)

    def findings(self) -> tuple[str, list[dict[str, Any]]]:
        """(scan name, findings) of the latest uploaded scan."""
        latest = self.db.query("SELECT scan FROM central_findings ORDER BY id DESC LIMIT 1")
        if not latest:
            return "", []
        scan = str(latest[0][0])
        rows = self.db.query("SELECT data FROM central_findings WHERE scan = ? ORDER BY id", [scan])
        return scan, [json.loads(r[0]) for r in rows]

    # --- attack paths and flows ---------------------------------------------------------------------
    def add_paths(self, scan: str, time: str, node: str, document: dict[str, Any]) -> None:
        """Keep an uploaded `paths -o json` document (the attack-path page shows the latest)."""
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO central_paths (scan, time, node, data) VALUES (?,?,?,?)",
                       (scan, time, node, json.dumps(document)))

    def paths(self) -> tuple[str, str, dict[str, Any] | None]:
        """(scan name, upload time, document) of the latest uploaded attack paths."""
        rows = self.db.query("SELECT scan, time, data FROM central_paths ORDER BY id DESC LIMIT 1")
        if not rows:
            return "", "", None
        scan, time, data = rows[0]
        return str(scan), str(time), json.loads(data)

    def add_flows(self, node: str, received: str, records: Iterable[dict[str, Any]]) -> int:
        """Store flow records in one transaction; returns how many were new. A record with a ``flow.id``
        (the agent's aggregated records) is stored once per node however often its batch is resent."""
        rows = []
        for r in records:
            uid = r.get("flow.id")
            rows.append((f"{node}/{uid}" if uid else None, node, received, json.dumps(r)))
        if not rows:
            return 0
        with self.db.transaction() as tx:
            return tx.executemany("INSERT INTO central_flows (uid, node, received, data) VALUES (?,?,?,?)"
                                  " ON CONFLICT DO NOTHING", rows)

    def flows(self, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` flow records, oldest first."""
        rows = self.db.query("SELECT data FROM central_flows ORDER BY id DESC LIMIT ?", [limit])
        return [json.loads(r[0]) for r in reversed(rows)]

    # --- workload policy modes ----------------------------------------------------------------------
    def set_mode(self, namespace: str, workload: str, mode: str, by: str, now: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO workload_modes (namespace, workload, mode, updated, updated_by) VALUES (?,?,?,?,?)"
                " ON CONFLICT (namespace, workload) DO UPDATE SET mode = excluded.mode,"
                " updated = excluded.updated, updated_by = excluded.updated_by",
                (namespace, workload, mode, now, by))

    def modes(self) -> list[dict[str, str]]:
        names = ("namespace", "workload", "mode", "updated", "updated_by")
        return [dict(zip(names, row, strict=True)) for row in self.db.query(
            f"SELECT {', '.join(names)} FROM workload_modes ORDER BY namespace, workload")]

    def workloads(self) -> list[dict[str, Any]]:
        """Workloads seen in alerts or given a mode, with their alert count and mode (default discover)."""
        seen = {(str(ns), str(w)): int(n) for ns, w, n in self.db.query(
            "SELECT namespace, workload, COUNT(*) FROM central_alerts WHERE workload <> ''"
            " GROUP BY namespace, workload")}
        modes = {(m["namespace"], m["workload"]): m for m in self.modes()}
        out = []
        for key in sorted(set(seen) | set(modes)):
            m = modes.get(key)
            out.append({"namespace": key[0], "workload": key[1], "alerts": seen.get(key, 0),
                        "mode": m["mode"] if m else "discover", "updated": m["updated"] if m else "",
                        "updated_by": m["updated_by"] if m else ""})
        return out

    # --- pod quarantines (desired state; the agent of the pod's node applies it) ---------------------
    def quarantine(self, namespace: str, pod: str, freeze: bool, by: str, now: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO pod_quarantines (namespace, pod, frozen, requested, requested_by) VALUES (?,?,?,?,?)"
                " ON CONFLICT (namespace, pod) DO UPDATE SET frozen = excluded.frozen,"
                " requested = excluded.requested, requested_by = excluded.requested_by",
                (namespace, pod, int(freeze), now, by))

    def release(self, namespace: str, pod: str) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM pod_quarantines WHERE namespace = ? AND pod = ?", (namespace, pod)) > 0

    def quarantines(self) -> list[dict[str, Any]]:
        names = ("namespace", "pod", "freeze", "requested", "requested_by")
        out = [dict(zip(names, row, strict=True)) for row in self.db.query(
            "SELECT namespace, pod, frozen, requested, requested_by FROM pod_quarantines ORDER BY namespace, pod")]
        for q in out:
            q["freeze"] = bool(q["freeze"])
        return out
