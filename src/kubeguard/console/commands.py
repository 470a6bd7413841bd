"""`kubeguard console`: serve the web console and JSON API over HTTPS.

Exit codes: 0 clean stop; 1 the database or the listener cannot start; 2 bad input (flag, file).
"""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stderr
from kubeguard.store.alerts import StoreError, default_db_path


def console(
    db: str = typer.Option("", "--db", envvar="KUBEGUARD_CONSOLE_DB",
                           help="SQLite file or postgresql://... URL (default: console.db next to the alert store)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (0.0.0.0 in a pod)."),
    port: int = typer.Option(8443, "--port", help="HTTPS port."),
    tls_cert: Path = typer.Option(..., "--tls-cert", help="Server certificate (PEM)."),
    tls_key: Path = typer.Option(..., "--tls-key", help="Server private key (PEM)."),
    client_ca: Path | None = typer.Option(None, "--client-ca",
                                          help="mTLS: require client certificates signed by this CA (PEM)."),
    setup_token_file: Path | None = typer.Option(
        None, "--setup-token-file", envvar="KUBEGUARD_SETUP_TOKEN_FILE",
        help="One-time setup token for the first admin (e.g. a mounted Secret); default: generate and print."),
) -> None:
    """Serve the authenticated web console and JSON API (HTTPS; first start needs the setup token)."""
    try:
        code = run_console(db or str(default_db_path().with_name("console.db")), host, port, tls_cert, tls_key,
                           client_ca, setup_token_file)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def _readable(path: Path, what: str) -> None:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UserError(f"{path}: {what} not found or not readable")


def _setup_token(path: Path | None) -> tuple[str, bool]:
    """(token, generated): the file's token, else a fresh random one (then printed)."""
    if path is not None:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise UserError(f"{path}: cannot read setup token: {exc.strerror}") from exc
        if len(token) < 16:
            raise UserError(f"{path}: setup token must have at least 16 characters")
        return token, False
    return secrets.token_urlsafe(24), True


def run_console(db_url: str, host: str, port: int, tls_cert: Path, tls_key: Path, client_ca: Path | None,
                setup_token_file: Path | None) -> int:
    """Open the database, build the app and serve it until SIGTERM/SIGINT; returns the exit code."""
    import uvicorn

    from kubeguard.console.app import create_app
    from kubeguard.store.sqldb import Database

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1-65535")
    _readable(tls_cert, "TLS certificate")
    _readable(tls_key, "TLS key")
    if client_ca is not None:
        _readable(client_ca, "client CA")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise UserError(f"{tls_cert}: certificate and key do not load: {exc}") from exc
    try:
        database = Database(db_url)
    except StoreError as exc:
        raise UserError(str(exc), code=1) from exc
    from kubeguard.console.auth import AuthStore

    try:
        needs_setup = not AuthStore(database).has_admin()
        token, generated = _setup_token(setup_token_file) if needs_setup else ("", False)
        app = create_app(database, setup_token=token or None)
    except StoreError as exc:
        raise UserError(str(exc), code=1) from exc
    url = f"https://{host if ':' not in host else f'[{host}]'}:{port}"
    stderr.print(f"kubeguard console: database {database.name}", markup=False)
    if needs_setup:
        if generated:
            stderr.print(f"kubeguard console: first-run setup token (one use): {token}", markup=False)
        else:
            stderr.print(f"kubeguard console: first-run setup token from {setup_token_file}", markup=False)
        stderr.print(f"kubeguard console: open {url}/setup to create the admin (password + TOTP)", markup=False)
    config = uvicorn.Config(
        app, host=host, port=port, ssl_certfile=str(tls_cert), ssl_keyfile=str(tls_key),
        ssl_ca_certs=str(client_ca) if client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        access_log=False,  # request lines may carry an enrolment token in the query; the audit log records actions
        log_level="warning", server_header=False, proxy_headers=False,
    )
    server = uvicorn.Server(config)
    stderr.print(f"kubeguard console: serving {url}{' (client certificates required)' if client_ca else ''}",
                 markup=False)
    try:
        server.run()
    except (OSError, SystemExit) as exc:
        stderr.print(f"kubeguard: error: cannot serve on {host}:{port}: {exc}", markup=False)
        return 1
    finally:
        database.close()
    return 0 if server.started else 1
