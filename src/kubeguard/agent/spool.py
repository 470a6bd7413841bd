"""The agent's disk spool: alerts waiting for the console, in one SQLite file (WAL, fsync per batch).

Bounded: at most `limit` alerts wait; when a new batch would pass the limit, the oldest waiting alerts
are dropped and counted (`dropped`, persisted, reported in every heartbeat) so a long outage costs the
oldest alerts, visibly, never the agent's disk. Alerts leave the spool only after the console
acknowledged them (`remove` after a 200), so a crash of either side resends instead of losing; the
console skips ids it already has.

One file can hold several spools (`table`): the agent's alerts (``spool``) and its flow records
(``flow_spool``), each with its own limit and drop count.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeguard.store.alerts import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
TABLES = ("spool", "flow_spool")


class Spool:
    """Records (alerts: Falco JSON with their uuid; flows: aggregated flow records) waiting for delivery."""

    def __init__(self, path: Path, limit: int = 100_000, table: str = "spool") -> None:
        if limit < 1:
            raise ValueError("spool limit must be at least 1")
        if table not in TABLES:
            raise ValueError(f"spool table {table!r}: expected one of {', '.join(TABLES)}")
        self.table = table
        self._dropped_key = "dropped" if table == "spool" else f"{table}.dropped"
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA.format(table=table))
            path.chmod(0o600)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the console spool: {exc}") from exc
        row = self._db.execute("SELECT value FROM spool_meta WHERE key = ?", (self._dropped_key,)).fetchone()
        self.dropped = int(row[0]) if row else 0

    def add(self, records: Sequence[dict[str, Any]]) -> int:
        """Append records durably; returns how many old ones were dropped to stay within the limit."""
        if not records:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(f"INSERT INTO {self.table} (record) VALUES (?)",
                                     [(json.dumps(r, default=str),) for r in records])
                over = self._count() - self.limit
                if over > 0:
                    self._db.execute(f"DELETE FROM {self.table} WHERE seq IN"
                                     f" (SELECT seq FROM {self.table} ORDER BY seq LIMIT ?)", (over,))
                    self.dropped += over
                    self._db.execute("INSERT INTO spool_meta (key, value) VALUES (?, ?)"
                                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                     (self._dropped_key, self.dropped))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return max(over, 0)

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to `limit` oldest (seq, record) pairs, left in the spool."""
        with self._lock:
            rows = self._db.execute(f"SELECT seq, record FROM {self.table} ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(seq), json.loads(record)) for seq, record in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget delivered records (after the console acknowledged them)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(f"DELETE FROM {self.table} WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def _count(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
