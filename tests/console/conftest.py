"""Fixtures for console tests: a real PostgreSQL server (Debian's packages) and a TLS key pair from openssl."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import require

PG_USER = "postgres"  # the system account Debian's postgresql package creates; the server never runs as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[], str]]:
    """Start a throw-away PostgreSQL cluster (initdb + pg_ctl as the postgres user, loopback port, SCRAM
    password); yields a function that creates a fresh database and returns its postgresql:// URL."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    require(initdb is not None and pg_ctl is not None, "PostgreSQL server binaries (Debian package postgresql)")
    try:
        account = pwd.getpwnam(PG_USER)
    except KeyError:
        account = None
    require(account is not None, f"the {PG_USER} system user (Debian package postgresql)")
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", PG_USER, "--"]
    elif os.geteuid() != account.pw_uid:
        require(False, f"root (to run PostgreSQL as {PG_USER})")
    base = Path(tempfile.mkdtemp(prefix="kg-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    password = secrets.token_urlsafe(16)
    (base / "pw").write_text(password)
    os.chown(base, account.pw_uid, account.pw_gid)
    for path in (sock, base / "pw"):
        os.chown(path, account.pw_uid, account.pw_gid)
    port = free_port()
    subprocess.run([*run_as, initdb, "-D", str(data), "-U", "kubeguard", "--auth=scram-sha-256",
                    f"--pwfile={base / 'pw'}", "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                   timeout=180)
    options = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
               " -c shared_buffers=64MB")
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "-t", "120",
                    "start"], check=True, capture_output=True, timeout=180)
    admin_url = f"postgresql://kubeguard:{password}@127.0.0.1:{port}/postgres"
    counter = iter(range(1_000_000))

    def new_database() -> str:
        import psycopg

        name = f"kg_{os.getpid()}_{next(counter)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://kubeguard:{password}@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_pair() -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for localhost / 127.0.0.1 and its key (openssl)."""
    require(shutil.which("openssl") is not None, "openssl")
    base = Path(tempfile.mkdtemp(prefix="kg-tls-"))
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True,
                   timeout=60)
    yield cert, key
    shutil.rmtree(base, ignore_errors=True)
