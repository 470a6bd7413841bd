"""The Tesla breach's services, each run inside a lab pod: `python -m kubeguard.lab.services ROLE ...`.

- ``console``: the open dashboard: POST /api/v1/exec runs a command in a shell with a terminal, no
  authentication (the 2018 door). It first makes the pod's own mounts (private mount namespace from
  `unshare -m`): a service-account token under /run/secrets, an empty /root and /tmp, the lab's hosts file;
- ``metadata``: the cloud instance metadata service (IMDSv1) on 169.254.169.254:80, handing out the
  node role's temporary credentials;
- ``objectstore``: moto's S3 server holding the "telemetry" bucket; only the node role's key is accepted;
- ``pool``: a Stratum (XMRig-style JSON-RPC) pool: login -> job, submit -> share accepted;
- ``relay``: a TCP relay (the CDN edge in front of the pool, on a non-standard port).

Each prints ``ready`` on stdout once it listens; each writes its own log (JSON lines) given by --log.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pty
import secrets
import select
import socket
import socketserver
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from kubeguard.redact import elide_blobs

METADATA_IP = "169.254.169.254"
ROLE_NAME = "eks-node-role"
BUCKET = "telemetry"
REGION = "us-east-1"
SA_TOKEN_DIR = Path("/run/secrets/kubernetes.io/serviceaccount")
MS_BIND = 4096
MS_PRIVATE = 1 << 18
MS_REC = 16384
MNT_DETACH = 2


class JsonLog:
    """Append-only JSON-lines log, one flush per record (the lab reads it while the service runs)."""

    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's lifetime
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._fh.write(json.dumps({"time": time.time(), "event": event, **fields}) + "\n")


def ready() -> None:
    print("ready", flush=True)


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _needed_paths() -> list[Path]:
    """What this Python runs from: its installation, its import path and kubeguard's own folder."""
    import kubeguard

    paths = {sys.prefix, sys.base_prefix, sys.executable, *sys.path, str(Path(kubeguard.__file__).parents[1])}
    return [Path(p).resolve() for p in paths if p and p.startswith("/")] + \
        [Path(p) for p in (sys.executable, sys.prefix) if p.startswith("/")]


def _cover(target: Path) -> None:
    """An empty tmpfs over `target`, with the folders this Python needs from it bound back (a checkout or
    a virtualenv below /tmp, a pyenv install below /root), so the pod's processes still start."""
    keep = sorted({p.relative_to(target).parts[0] for p in _needed_paths()
                   if p.is_relative_to(target) and p.relative_to(target).parts})
    stash = Path(tempfile.mkdtemp(prefix=".kg-host-", dir="/dev/shm"))
    _mount(str(target), str(stash), None, MS_BIND | MS_REC)
    _mount("kg-lab", str(target), "tmpfs", 0)
    for name in keep:
        source = stash / name
        if not source.exists():
            continue
        inside = target / name
        if source.is_dir():
            inside.mkdir()
        else:
            inside.touch()
        _mount(str(source), str(inside), None, MS_BIND | MS_REC)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(stash).encode(), MNT_DETACH)
    stash.rmdir()


def pod_mounts(hosts: str, token: str) -> None:
    """Make this (unshared) mount namespace look like a pod's: token, an empty /root and /tmp, the lab's hosts.

    Nothing of it is visible on the host: every mount is in the pod's private mount namespace. The
    folders of /run, /tmp and /root that this Python runs from are bound back (see `_cover`).
    """
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount(hosts, "/etc/hosts", None, MS_BIND)
    for target in ("/run", "/tmp", "/root"):
        _cover(Path(target))
    os.environ["HOME"] = "/root"
    SA_TOKEN_DIR.mkdir(parents=True)
    (SA_TOKEN_DIR / "token").write_text(token)
    (SA_TOKEN_DIR / "namespace").write_text("kube-system")


class QuietHandler(BaseHTTPRequestHandler):
    """No reverse DNS, no stderr noise; answers JSON."""

    server_version = "lab"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def address_string(self) -> str:
        return str(self.client_address[0])

    def reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run_in_terminal(command: str, timeout: float = 60) -> tuple[int, str]:
    """Run `command` with /bin/bash on a new pseudo-terminal (as the dashboard's exec does); (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the terminal is its controlling tty
        os.execv("/bin/bash", ["bash", "-c", command])
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready_fds, _, _ = select.select([fd], [], [], 0.5)
        if ready_fds:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif os.waitpid(pid, os.WNOHANG)[0]:
            pid = 0
            break
    os.close(fd)
    status = os.waitpid(pid, 0)[1] if pid else 0
    code = os.waitstatus_to_exitcode(status) if pid else 0
    return code, out.decode(errors="replace").replace("\r\n", "\n")


def console(args: argparse.Namespace) -> None:
    log = JsonLog(args.log)  # before the mounts: they hide /tmp and /root, where the lab's folder may be
    pod_mounts(args.hosts, args.token)

    class Console(QuietHandler):
        def do_GET(self) -> None:
            log.write("page", path=self.path, client=self.client_address[0])
            self.reply(200, b"<html><title>Kubernetes Dashboard</title><body>Overview</body></html>", "text/html")

        def do_POST(self) -> None:
            if self.path != "/api/v1/exec":
                self.reply(404, b"{}")
                return
            length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            command = str(json.loads(self.rfile.read(length) or b"{}").get("command", ""))
            log.write("exec", client=self.client_address[0], command=elide_blobs(command)[:200])
            code, output = run_in_terminal(command)
            self.reply(200, json.dumps({"exit": code, "output": output}).encode())

    server = HTTPServer((args.ip, args.port), Console)
    ready()
    server.serve_forever()


def metadata(args: argparse.Namespace) -> None:
    log = JsonLog(args.log)
    creds = json.loads(Path(args.credentials).read_text())
    base = "/latest/meta-data/iam/security-credentials/"

    class Metadata(QuietHandler):
        def do_GET(self) -> None:
            log.write("get", path=self.path, client=self.client_address[0])
            if self.path.rstrip("/") + "/" == base:
                self.reply(200, ROLE_NAME.encode(), "text/plain")
            elif self.path == base + ROLE_NAME:
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                self.reply(200, json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": creds["key"],
                                            "SecretAccessKey": creds["secret"], "Token": secrets.token_hex(32),
                                            "Expiration": expires}).encode())
            else:
                self.reply(404, b"")

    server = HTTPServer((METADATA_IP, 80), Metadata)  # on the pod's loopback: the lab routes it there
    ready()
    server.serve_forever()


SETUP_CALLS = 4  # create_user, create_access_key, put_user_policy, create_bucket (+ one per object)
TELEMETRY = {f"vehicles/2018-02-{day:02d}.csv": b"vin,lat,lon,speed\n" * 64 for day in (1, 2, 3)}


def objectstore(args: argparse.Namespace) -> None:
    """moto's S3 (and IAM) server; after set-up only the node role's signed requests are served."""
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS + len(TELEMETRY))
    import boto3
    from moto.server import ThreadedMotoServer

    log_fh = open(args.log, "a", buffering=1)  # noqa: SIM115 - the server's request log, for its lifetime
    sys.stderr = log_fh  # werkzeug writes one line per request there: the store's own log
    server = ThreadedMotoServer(ip_address=args.ip, port=args.port, verbose=True)
    server.start()
    endpoint = f"http://{args.ip}:{args.port}"
    setup = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup",
             "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName=ROLE_NAME)
    key = iam.create_access_key(UserName=ROLE_NAME)["AccessKey"]
    iam.put_user_policy(UserName=ROLE_NAME, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    s3 = boto3.client("s3", **setup)
    s3.create_bucket(Bucket=BUCKET)
    for name, body in TELEMETRY.items():
        s3.put_object(Bucket=BUCKET, Key=name, Body=body)
    tmp = Path(args.credentials + ".tmp")
    tmp.write_text(json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
    tmp.chmod(0o600)
    tmp.replace(args.credentials)
    ready()
    threading.Event().wait()


def pool(args: argparse.Namespace) -> None:
    log = JsonLog(args.log)

    class Pool(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            peer = self.client_address[0]
            for raw in self.rfile:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.write("bad-line", client=peer)
                    return
                method, ident = msg.get("method"), msg.get("id")
                if method == "login":
                    job = {"blob": secrets.token_hex(38), "job_id": secrets.token_hex(4), "target": "ffff0000"}
                    log.write("login", client=peer, agent=str(msg.get("params", {}).get("agent", ""))[:80])
                    self.send({"id": ident, "jsonrpc": "2.0", "error": None,
                               "result": {"id": secrets.token_hex(4), "job": job, "status": "OK"}})
                    log.write("job", client=peer, job_id=job["job_id"])
                elif method == "submit":
                    log.write("share", client=peer, job_id=str(msg.get("params", {}).get("job_id", "")))
                    self.send({"id": ident, "jsonrpc": "2.0", "error": None, "result": {"status": "OK"}})
                else:
                    self.send({"id": ident, "jsonrpc": "2.0", "error": {"code": -1, "message": "unknown method"}})

        def send(self, obj: dict[str, Any]) -> None:
            self.wfile.write(json.dumps(obj).encode() + b"\n")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((args.ip, args.port), Pool)
    server.daemon_threads = True
    ready()
    server.serve_forever()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def relay(args: argparse.Namespace) -> None:
    log = JsonLog(args.log)
    target_host, _, target_port = args.to.rpartition(":")
    listener = socket.create_server((args.ip, args.port), reuse_port=False)
    ready()
    while True:
        client, peer = listener.accept()
        log.write("relay", client=peer[0], to=args.to)
        upstream = socket.create_connection((target_host, int(target_port)), timeout=30)
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubeguard.lab.services")
    sub = parser.add_subparsers(dest="role", required=True)
    for role, func in (("console", console), ("metadata", metadata), ("objectstore", objectstore),
                       ("pool", pool), ("relay", relay)):
        p = sub.add_parser(role)
        p.set_defaults(func=func)
        p.add_argument("--ip", required=True)
        p.add_argument("--port", type=int, default=0)
        p.add_argument("--log", required=True)
        if role == "console":
            p.add_argument("--hosts", required=True)
            p.add_argument("--token", required=True)
        if role in ("metadata", "objectstore"):
            p.add_argument("--credentials", required=True)
        if role == "relay":
            p.add_argument("--to", required=True)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
