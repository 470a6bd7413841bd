"""Falco's process and network rules fire live through the agent running Falco's own rule files: each case
performs the behaviour for real in a fresh pod and asserts that exactly its rule of the group fires, with the
pod's identity. One agent for the module (rules Falco ships disabled are switched on with Falco's
`-o rules[].enable.rule=NAME` selection, as a user would).

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fslab import PYTHON, FalcoLab

pytestmark = pytest.mark.root

SSH_PEER = "198.51.100.7"  # TEST-NET-2, on the pod's own loopback: "outbound" to Falco, never leaves the pod

MEMFD_EXEC = (f"{PYTHON} -c \"import os; fd = os.memfd_create('kg-payload'); "
              "os.write(fd, open('/bin/true', 'rb').read()); os.execve(fd, ['kg-payload'], {})\"")
PACKET_SOCKET = f"{PYTHON} -c \"import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300).close()\""
SSH_443 = (f"{PYTHON} -c \"import socket, time; s = socket.socket(); s.bind(('{SSH_PEER}', 443)); s.listen(); "
           "time.sleep(30)\" & sleep 1; "
           f"ssh -p 443 -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 {SSH_PEER} true; "
           "kill %1; true")

# (case id, rule, behaviour)
CASES = [
    ("memfd-exec", "Fileless execution via memfd_create", MEMFD_EXEC),
    ("packet-socket", "Packet socket created in container", PACKET_SOCKET),
    ("ssh-nonstandard-port", "Disallowed SSH Connection Non Standard Port", SSH_443),
]
GROUP = tuple(c[1] for c in CASES)
ENABLE: tuple[str, ...] = ()  # rules Falco ships disabled that a case needs


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    falco = FalcoLab.start(tmp_path_factory.mktemp("falco-process"),
                           options=tuple(f"rules[].enable.rule={name}" for name in ENABLE))
    try:
        yield falco
    finally:
        falco.close()


@pytest.mark.parametrize(("rule", "behaviour"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_process_rule_fires(lab: FalcoLab, rule: str, behaviour: str) -> None:
    pod = lab.pod("proc")
    pod.add_address(SSH_PEER)
    lab.behave(pod, behaviour)
    lab.expect_only(pod, rule, GROUP)
