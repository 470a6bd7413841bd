"""Fixtures for console tests: a real PostgreSQL server (Debian's packages) and a TLS key pair from openssl."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import require
from tests.pglab import PostgresUnavailable, TempPostgres, free_port

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[], str]]:
    """A throw-away PostgreSQL server (tests/pglab.py); yields a function returning a fresh database's URL."""
    try:
        server = TempPostgres()
    except PostgresUnavailable as exc:
        require(False, str(exc))
        raise
    server.start()
    try:
        yield server.new_database
    finally:
        server.stop()


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
