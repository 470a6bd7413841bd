"""One SQL database behind a small interface: SQLite (embedded, WAL) or PostgreSQL (psycopg 3).

SQL is written once with ``?`` placeholders; for PostgreSQL they become ``%s``. Schema text may use
``{pk}`` for an auto-increment primary key and ``{real}``/``{bigint}`` for the types that differ.
Each thread has its own connection (FastAPI runs sync routes in a thread pool), so the class is
safe to share between threads and, through the database, between processes and console replicas.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubeguard.store.alerts import StoreError
from kubeguard.store.sqlitefile import NotOursError, application_id_of, create_stamped

POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_TYPES = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "bigint": "INTEGER"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "bigint": "BIGINT"},
}
# One advisory lock id for schema creation, so replicas starting together do not race on CREATE TABLE.
_SCHEMA_LOCK = 0x6B6775617264
CONSOLE_APPLICATION_ID = 0x6B67636E  # "kgcn": PRAGMA application_id of a console's SQLite database


def mask_dsn(url: str) -> str:
    """A PostgreSQL URL with its password hidden; a path unchanged."""
    if not url.startswith(POSTGRES_PREFIXES) or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


class Transaction:
    """The cursor-like object a `Database.transaction()` yields."""

    def __init__(self, db: Database, conn: Any) -> None:
        self._db = db
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cur = self._conn.execute(self._db.sql(sql), self._db.params(params))
        return int(cur.rowcount or 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._conn.execute(self._db.sql(sql), self._db.params(params)).fetchall()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row; returns the rows changed in all (skipped conflicts are not counted)."""
        if self._db.dialect == "sqlite":
            return int(self._conn.executemany(sql, rows).rowcount or 0)
        with self._conn.cursor() as cur:
            cur.executemany(self._db.sql(sql), [self._db.params(r) for r in rows])
            return max(int(cur.rowcount or 0), 0)

    @property
    def connection(self) -> Any:
        """The underlying connection (sqlite3 or psycopg), for dialect-specific bulk paths such as COPY."""
        return self._conn

    def changes(self) -> int:
        """SQLite only: rows changed on this connection so far (to count ignored conflicts)."""
        return int(self._conn.total_changes)


class Database:
    """SQLite file or PostgreSQL URL; `transaction()` for writes, `query()` for reads."""

    def __init__(self, url: str | Path, application_id: int = CONSOLE_APPLICATION_ID) -> None:
        text = str(url)
        self.application_id = application_id
        self.url = text
        self.dialect = "postgresql" if text.startswith(POSTGRES_PREFIXES) else "sqlite"
        if self.dialect == "sqlite":
            path = text[len("sqlite:///"):] if text.startswith("sqlite:///") else text
            self.path: Path | None = Path(path)
        else:
            self.path = None
        self.name = mask_dsn(text)
        self._local = threading.local()
        # Every open connection, one per thread that used this object. A thread's connection is closed when the
        # thread ends (a web server's worker threads come and go) and all of them when this object is collected.
        self._all: list[Any] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._all, self._lock)
        self.connection()  # fail early, with the database named

    def sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def params(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """PostgreSQL text cannot hold NUL: it is removed from string parameters (SQLite keeps them)."""
        if self.dialect == "sqlite":
            return tuple(values)
        return tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in values)

    def connection(self) -> Any:
        holder = getattr(self._local, "holder", None)
        if holder is not None and holder.conn is not None:
            return holder.conn
        try:
            conn = self._open()
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.name}: cannot open database: {exc}") from exc
        except Exception as exc:  # psycopg.Error; imported lazily
            raise StoreError(f"{self.name}: cannot connect: {str(exc).strip().splitlines()[0]}") from exc
        holder = _ThreadConnection(conn)
        self._local.holder = holder
        weakref.finalize(holder, _forget, self._all, self._lock, conn)
        with self._lock:
            self._all.append(conn)
        return conn

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            assert self.path is not None
            self._own_sqlite(self.path)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def _own_sqlite(self, path: Path) -> None:
        """Create the file private and stamped when missing; refuse (StoreError) a file that is not ours."""
        if not path.exists() and create_stamped(path, self.application_id, lambda db: None):
            return
        try:
            app_id = application_id_of(path, "kubeguard console database")
        except NotOursError as exc:
            raise StoreError(str(exc)) from exc
        if app_id != self.application_id:
            raise StoreError(f"{path}: not a kubeguard console database (SQLite application_id {app_id:#x}); "
                             "refusing to change it")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit of work; committed on success, rolled back on error (StoreError raised)."""
        conn = self.connection()
        try:
            if self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Transaction(self, conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    yield Transaction(self, conn)
        except StoreError:
            raise
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (its own snapshot)."""
        conn = self.connection()
        try:
            return [tuple(row) for row in conn.execute(self.sql(sql), self.params(params)).fetchall()]
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc

    def _error(self, exc: Exception) -> Exception:
        """A database error as StoreError (a broken PostgreSQL connection is dropped); others unchanged."""
        if isinstance(exc, sqlite3.Error):
            return StoreError(f"{self.name}: {exc}")
        if type(exc).__module__.startswith("psycopg"):
            self._drop_connection()
            return StoreError(f"{self.name}: {str(exc).strip().splitlines()[0]}")
        return exc

    def create_schema(self, schema: str) -> None:
        """Run `schema` (statements separated by ';'), once across replicas for PostgreSQL."""
        statements = [s.strip() for s in schema.format(**_TYPES[self.dialect]).split(";") if s.strip()]
        with self.transaction() as tx:
            if self.dialect == "postgresql":
                tx.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            for statement in statements:
                tx.execute(statement)

    def _drop_connection(self) -> None:
        holder = getattr(self._local, "holder", None)
        self._local.holder = None
        if holder is not None and holder.conn is not None:
            _forget(self._all, self._lock, holder.conn)

    def open_connections(self) -> int:
        """How many connections are open (at most one per live thread that used this object)."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        _close_all(self._all, self._lock)
        self._local = threading.local()


class _ThreadConnection:
    """One thread's connection, kept in the thread's local storage: when the thread ends, it is collected."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: Any) -> None:
        self.conn = conn


def _forget(conns: list[Any], lock: threading.Lock, conn: Any) -> None:
    """Close `conn` and drop it from `conns` (no-op when it is already gone)."""
    with lock:
        if not any(c is conn for c in conns):
            return
        conns[:] = [c for c in conns if c is not conn]
    _close_quietly(conn)


def _close_all(conns: list[Any], lock: threading.Lock) -> None:
    with lock:
        closing = list(conns)
        conns.clear()
    for conn in closing:
        _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already broken
        pass
