"""The far end of the Falco network rule tests: a process in a pod's network namespace but outside its cgroup.

A peer stands for a host elsewhere on the network: it answers (or dials) the pod at an address that exists only
in the pod's namespace (on its loopback, e.g. TEST-NET 198.51.100.7 or 169.254.169.254), so the traffic never
leaves the namespace the test made, and its own events are the node's (container.id "host"), not the pod's.

    with peer(pod, "listen", "198.51.100.7", 8081):      # a TCP listener the pod connects to
        lab.behave(pod, "...")
    with peer(pod, "dial", pod.ip, 8083):                # a client that dials the pod until it answers
        lab.behave(pod, "<server that accepts once>")
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fslab import PYTHON
from podlab import Pod

LISTEN = ("import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); print('ready', flush=True)\n"
          "while True:\n  c, _ = s.accept(); c.close()")
# Dials until the pod's server answers (it may start after this), then once more is never needed: one connection.
DIAL = ("import socket, sys, time\nend = time.monotonic() + 60\nprint('ready', flush=True)\n"
        "while time.monotonic() < end:\n"
        "  try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close(); break\n"
        "  except OSError:\n    time.sleep(0.1)")
# Sends a datagram every 0.1 s until stopped (the pod's receiver may start after it).
DATAGRAMS = ("import socket, sys, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "print('ready', flush=True)\nend = time.monotonic() + 60\n"
             "while time.monotonic() < end:\n  s.sendto(b'kg', (sys.argv[1], int(sys.argv[2]))); time.sleep(0.1)")


def _start(pod: Pod, cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", pod.netns, *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # every peer prints "ready" once it can be reached
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"peer {cmd} did not start: {line!r} {proc.communicate()[1]}")
    return proc


@contextmanager
def peer(pod: Pod, kind: str, address: str, port: int, work: Path | None = None) -> Iterator[None]:
    """kind: "listen" (TCP listener), "dial" (a client dialing the pod), "datagrams" (UDP datagrams sent to
    the pod without connect), "metadata" (the lab's instance
    metadata service, kubeguard.lab.services), "pool" (the lab's Stratum pool). `work`: a folder for the lab
    services' logs and credentials."""
    if kind in ("listen", "dial", "datagrams"):
        code = {"listen": LISTEN, "dial": DIAL, "datagrams": DATAGRAMS}[kind]
        cmd = [PYTHON, "-c", code, address, str(port)]
    else:
        assert work is not None
        work.mkdir(parents=True, exist_ok=True)
        # this interpreter (a virtualenv's, where kubeguard is installed), not fslab's base python3
        cmd = [sys.executable, "-m", "kubeguard.lab.services", kind, "--ip", address, "--port", str(port),
               "--log", str(work / f"{kind}.log")]
        if kind == "metadata":
            credentials = work / "credentials.json"
            credentials.write_text(json.dumps({"key": "AKIAKGTESTONLY000000", "secret": "kg-test-only"}))
            cmd += ["--credentials", str(credentials)]
    proc = _start(pod, cmd)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()
