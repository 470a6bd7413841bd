"""A throw-away PostgreSQL server from Debian's packages (initdb + pg_ctl as the `postgres` user, loopback
port, SCRAM password), for the console tests' PostgreSQL lane and bench.console_ingest."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from itertools import count
from pathlib import Path

PG_USER = "postgres"  # the system account Debian's postgresql package creates; the server never runs as root


class PostgresUnavailable(Exception):
    """The binaries, the postgres account or the rights to run the server are missing; says which."""


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """`start()` a private cluster in a temp dir; `new_database()` returns a fresh postgresql:// URL; `stop()`."""

    def __init__(self, settings: str = "") -> None:
        self.initdb, self.pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            raise PostgresUnavailable("PostgreSQL server binaries (Debian package postgresql)")
        try:
            self.account = pwd.getpwnam(PG_USER)
        except KeyError as exc:
            raise PostgresUnavailable(f"the {PG_USER} system user (Debian package postgresql)") from exc
        if os.geteuid() == 0:
            self.run_as = ["runuser", "-u", PG_USER, "--"]
        elif os.geteuid() == self.account.pw_uid:
            self.run_as = []
        else:
            raise PostgresUnavailable(f"root (to run PostgreSQL as {PG_USER})")
        self.settings = settings
        self.base = Path(tempfile.mkdtemp(prefix="kg-pg-"))
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._names = count()

    def start(self) -> None:
        data, sock, pw = self.base / "data", self.base / "sock", self.base / "pw"
        sock.mkdir()
        pw.write_text(self.password)
        for path in (self.base, sock, pw):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        subprocess.run([*self.run_as, self.initdb, "-D", str(data), "-U", "kubeguard", "--auth=scram-sha-256",
                        f"--pwfile={pw}", "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=180)
        options = (f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200"
                   f" -c shared_buffers=64MB {self.settings}")
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(data), "-o", options, "-l", str(self.base / "log"),
                        "-w", "-t", "120", "start"], check=True, capture_output=True, timeout=180)

    def url(self, database: str) -> str:
        return f"postgresql://kubeguard:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"kg_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(self.base, ignore_errors=True)
