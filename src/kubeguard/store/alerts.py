"""Alert and finding persistence in SQLite (WAL).

Durability policy: every `add()` is one transaction committed with ``synchronous=FULL`` in WAL
mode, so once `add()` returns the alerts are fsync'd to the WAL and survive a crash or power
loss. Callers acknowledge alerts (to a webhook, to a user) only after `add()` returned.

The store knows nothing of detection: it keeps Falco-format alerts plus the workload identity
and ATT&CK ids, and posture findings per scan.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeguard.model import Alert, Finding, Severity

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    rule TEXT NOT NULL,
    priority TEXT NOT NULL,
    severity INTEGER NOT NULL,
    source TEXT NOT NULL,
    hostname TEXT NOT NULL,
    output TEXT NOT NULL,
    output_fields TEXT NOT NULL,
    tags TEXT NOT NULL,
    mitre TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    pod TEXT NOT NULL DEFAULT '',
    container TEXT NOT NULL DEFAULT '',
    container_id TEXT NOT NULL DEFAULT '',
    image TEXT NOT NULL DEFAULT '',
    node TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(time);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule);
CREATE INDEX IF NOT EXISTS alerts_ns ON alerts(namespace);
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan TEXT NOT NULL,
    time TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    category TEXT NOT NULL,
    severity INTEGER NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_scan ON findings(scan);
"""


def default_db_path() -> Path:
    """`$KUBEGUARD_DB`, else `$XDG_DATA_HOME/kubeguard/kubeguard.db` (~/.local/share by default)."""
    explicit = os.environ.get("KUBEGUARD_DB")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kubeguard" / "kubeguard.db"


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Filters for `AlertStore.alerts()`; None means no filter."""

    since: str | None = None  # RFC 3339 time; alerts at or after it
    min_severity: Severity | None = None
    rule: str | None = None
    namespace: str | None = None
    limit: int | None = None


class StoreError(Exception):
    """The store could not be opened or written; the message names the path."""


class AlertStore:
    """One SQLite database holding alerts and findings. Safe to open from several processes."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open alert store: {exc}") from exc
        if self.path.exists():
            os.chmod(self.path, 0o600)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, alerts: Iterable[Alert]) -> int:
        """Store alerts in one durable transaction; returns how many were written."""
        rows = []
        for a in alerts:
            w = a.workload
            rows.append((
                a.time, a.rule, a.priority, int(a.severity), a.source, a.hostname, a.output,
                json.dumps(a.output_fields, default=str), json.dumps(a.tags), json.dumps(a.mitre),
                w.namespace if w else "", w.pod if w else "", w.container if w else "",
                w.container_id if w else "", w.image if w else "", w.node if w else "",
            ))
        if not rows:
            return 0
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO alerts (time, rule, priority, severity, source, hostname, output,"
                    " output_fields, tags, mitre, namespace, pod, container, container_id, image, node)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write alerts: {exc}") from exc
        return len(rows)

    def alerts(self, query: AlertQuery = AlertQuery()) -> Iterator[Alert]:
        """Alerts matching the query, oldest first."""
        sql = "SELECT time, rule, priority, source, hostname, output, output_fields, tags FROM alerts"
        where: list[str] = []
        params: list[object] = []
        if query.since:
            where.append("time >= ?")
            params.append(query.since)
        if query.min_severity is not None:
            where.append("severity >= ?")
            params.append(int(query.min_severity))
        if query.rule:
            where.append("rule = ?")
            params.append(query.rule)
        if query.namespace:
            where.append("namespace = ?")
            params.append(query.namespace)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time, id"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        for time, rule, priority, source, hostname, output, fields, tags in self._db.execute(sql, params):
            yield Alert.from_falco({
                "time": time, "rule": rule, "priority": priority, "source": source,
                "hostname": hostname, "output": output, "output_fields": json.loads(fields),
                "tags": json.loads(tags),
            })

    def count_alerts(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def add_findings(self, scan: str, time: str, findings: Iterable[Finding]) -> int:
        """Store one scan's findings (suppressed ones included, marked) in one transaction."""
        rows = [
            (scan, time, f.id, f.check, f.category, int(f.severity), f.resource.namespace,
             json.dumps(f.to_dict(), default=str))
            for f in findings
        ]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO findings (scan, time, finding_id, check_id, category, severity, namespace, data)"
                " VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
        return len(rows)

    def findings(self, scan: str | None = None) -> list[dict[str, object]]:
        """Findings of one scan (default: the latest), as their JSON records."""
        if scan is None:
            row = self._db.execute("SELECT scan FROM findings ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return []
            scan = row[0]
        cur = self._db.execute("SELECT data FROM findings WHERE scan = ? ORDER BY id", (scan,))
        return [json.loads(data) for (data,) in cur]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
