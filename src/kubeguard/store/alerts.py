"""Alert and finding persistence in SQLite (WAL).

Durability policy: every `add()` is one transaction committed with ``synchronous=FULL`` in WAL
mode, so once `add()` returns the alerts are fsync'd to the WAL and survive a crash or power
loss. Callers acknowledge alerts (to a webhook, to a user) only after `add()` returned.

Idempotence: every alert has a stable id (`Alert.uuid`); the ``uuid`` column is UNIQUE and `add()`
skips ids already stored, so writing the same alerts again (a replay re-run after a kill, a resent
batch) stores each of them once.

Ownership: a store is an SQLite file stamped with kubeguard's ``application_id`` and a schema
``user_version``. A new store is built in a private temporary file (mode 600) and linked into place
only when complete. An existing file that is not a kubeguard store (another application's SQLite
database, an empty or non-SQLite file) is refused with `StoreError` and never modified; stores
written before the stamp existed (tables ``alerts`` and ``findings`` only) are recognised and stamped.

The store knows nothing of detection: it keeps Falco-format alerts plus the workload identity
and ATT&CK ids, and posture findings per scan.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeguard.model import Alert, Finding, Severity

log = logging.getLogger(__name__)

APPLICATION_ID = 0x6B677264  # "kgrd": PRAGMA application_id of every kubeguard alert store
SCHEMA_VERSION = 2  # PRAGMA user_version; 2 added the unique alert id column
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OWN_TABLES = {"alerts", "findings", "sqlite_sequence"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT,
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
_UUID_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS alerts_uuid ON alerts(uuid)"


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
        self.skipped_rows = 0  # stored rows `alerts()` could not read (bad JSON, unknown priority, ...)
        try:
            if not self.path.exists():
                self._create()
            else:
                self._check_owned()
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open alert store: {exc}") from exc

    def _create(self) -> None:
        """Build a stamped, empty store in a private temporary file and link it into place (atomic)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".new", dir=self.path.parent)
        os.close(fd)  # mkstemp creates it with mode 600
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.executescript(SCHEMA)
                db.execute(_UUID_INDEX)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            finally:
                db.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:  # another process created it first: use theirs (checked below)
                self._check_owned()
        finally:
            os.unlink(tmp)

    def _check_owned(self) -> None:
        """StoreError unless the file is a kubeguard store; reads only, never writes."""
        if not self.path.is_file():
            raise StoreError(f"{self.path}: not a kubeguard alert store (not a regular file)")
        with self.path.open("rb") as handle:
            header = handle.read(100)
        if not header:
            raise StoreError(f"{self.path}: not a kubeguard alert store (an empty file); refusing to change it")
        if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
            raise StoreError(f"{self.path}: not a kubeguard alert store (not an SQLite database); "
                             "refusing to change it")
        app_id = int.from_bytes(header[68:72], "big")
        if app_id == APPLICATION_ID:
            return
        if app_id != 0:
            raise StoreError(f"{self.path}: not a kubeguard alert store (SQLite application_id {app_id:#x}); "
                             "refusing to change it")
        uri = f"file:{self.path.resolve()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30.0)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(alerts)")}
        finally:
            db.close()
        if not tables or not tables <= _OWN_TABLES or not {"alerts", "findings"} <= tables \
                or not {"rule", "output_fields", "tags"} <= columns:
            raise StoreError(f"{self.path}: not a kubeguard alert store (an SQLite database with other tables); "
                             "refusing to change it")

    def _migrate(self) -> None:
        """Bring a store of an older schema to SCHEMA_VERSION (stamping unstamped kubeguard stores)."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version >= SCHEMA_VERSION:
            return
        with self._transaction():
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(alerts)")}
            if "uuid" not in columns:
                self._db.execute("ALTER TABLE alerts ADD COLUMN uuid TEXT")
            self._db.execute(_UUID_INDEX)
            self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, alerts: Iterable[Alert]) -> int:
        """Store alerts in one durable transaction; ids already stored are skipped. Returns how many were new."""
        rows = []
        for a in alerts:
            w = a.workload
            rows.append((
                a.uuid, a.time, a.rule, a.priority, int(a.severity), a.source, a.hostname, a.output,
                json.dumps(a.output_fields, default=str), json.dumps(a.tags), json.dumps(a.mitre),
                w.namespace if w else "", w.pod if w else "", w.container if w else "",
                w.container_id if w else "", w.image if w else "", w.node if w else "",
            ))
        if not rows:
            return 0
        try:
            with self._transaction():
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO alerts (uuid, time, rule, priority, severity, source, hostname, output,"
                    " output_fields, tags, mitre, namespace, pod, container, container_id, image, node)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                written = self._db.total_changes - before
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write alerts: {exc}") from exc
        return written

    def alerts(self, query: AlertQuery = AlertQuery()) -> Iterator[Alert]:
        """Alerts matching the query, oldest first. A row that cannot be read is logged, counted in
        `skipped_rows` and skipped; the others are still listed."""
        sql = "SELECT id, uuid, time, rule, priority, source, hostname, output, output_fields, tags FROM alerts"
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
        try:
            rows = self._db.execute(sql, params)
            for row_id, uuid, *values in rows:
                alert = _row_alert(uuid, *values)
                if isinstance(alert, str):
                    self.skipped_rows += 1
                    log.warning("%s: stored alert row %s skipped: %s", self.path, row_id, alert)
                    continue
                yield alert
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read alerts: {exc}") from exc

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


def _row_alert(uuid: object, time: object, rule: object, priority: object, source: object, hostname: object,
               output: object, fields: object, tags: object) -> Alert | str:
    """One stored row as an Alert, or what is wrong with it."""
    try:
        output_fields = json.loads(str(fields))
        tag_list = json.loads(str(tags))
    except (ValueError, RecursionError):
        return "output_fields or tags is not JSON"
    if not isinstance(output_fields, dict):
        return "output_fields is not a JSON object"
    if not isinstance(tag_list, list):
        return "tags is not a JSON list"
    try:
        alert = Alert.from_falco({
            "time": time, "rule": rule, "priority": str(priority), "source": source, "hostname": hostname,
            "output": output, "output_fields": output_fields, "tags": tag_list, "uuid": uuid,
        })
        alert.severity  # noqa: B018 - an unknown priority raises here, not in the caller's loop
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return alert


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
