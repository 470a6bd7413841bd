"""Falco's process and network rules fire live through the agent running Falco's own rule files: each case
performs the behaviour for real in a fresh pod and asserts that exactly its rule of the group fires, with the
pod's identity. One agent for the module (rules Falco ships disabled are switched on with Falco's
`-o rules[].enable.rule=NAME` selection, as a user would).

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fslab import PYTHON, SENTINEL, FalcoLab

pytestmark = pytest.mark.root

SSH_PEER = "198.51.100.7"  # TEST-NET-2, on the pod's own loopback: "outbound" to Falco, never leaves the pod

MEMFD_EXEC = (f"{PYTHON} -c \"import os; fd = os.memfd_create('kg-payload'); "
              "os.write(fd, open('/bin/true', 'rb').read()); os.execve(fd, ['kg-payload'], {})\"")
PACKET_SOCKET = f"{PYTHON} -c \"import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300).close()\""
SSH_443 = (f"{PYTHON} -c \"import socket, time; s = socket.socket(); s.bind(('{SSH_PEER}', 443)); s.listen(); "
           "time.sleep(30)\" & sleep 1; "
           f"ssh -p 443 -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 {SSH_PEER} true; "
           "kill %1; true")

# proc.env is copied in the kernel at exec (the ebpf sensor's execenv section): programs that exit within a
# millisecond, gone before the agent sees their exec, still have it
GLIBC_TUNABLES = "GLIBC_TUNABLES=glibc.malloc.mxfast=0 /bin/true"
HTTP_PROXY = f"http_proxy=http://{SSH_PEER}:3128 HTTP_PROXY=http://{SSH_PEER}:3128 curl --version >/dev/null"

REDIRECT = (f"{PYTHON} -c \"import socket, time; s = socket.socket(); s.bind(('{SSH_PEER}', 443)); s.listen(); "
            "time.sleep(30)\" >/dev/null 2>&1 & sleep 1; "
            f"{PYTHON} -c \"import os, socket; c = socket.create_connection(('{SSH_PEER}', 443)); "
            "os.dup2(c.fileno(), 0); os.dup2(c.fileno(), 1)\"")

# (case id, rule, behaviour, privileged pod)
CASES = [
    ("memfd-exec", "Fileless execution via memfd_create", MEMFD_EXEC, False),
    ("packet-socket", "Packet socket created in container", PACKET_SOCKET, False),
    ("ssh-nonstandard-port", "Disallowed SSH Connection Non Standard Port", SSH_443, False),
    ("mount-privileged", "Mount Launched in Privileged Container", "mount -t tmpfs kg-tmp /mnt", True),
    ("debugfs-privileged", "Debugfs Launched in Privileged Container", "debugfs -R stats /dev/null || true", True),
    ("glibc-tunables-env", "Potential Local Privilege Escalation via Environment Variables Misuse", GLIBC_TUNABLES,
     False),
    ("http-proxy-env", "Program run with disallowed http proxy env", HTTP_PROXY, False),
    ("redirect-stdio-socket", "Redirect STDOUT/STDIN to Network Connection in Container", REDIRECT, False),
    ("base64-decode", "Decoding Payload in Container", "echo aGk= | base64 -d > /dev/null", False),
    ("miner-name", "Known Cryptominer Process Executed", "cp /bin/true /tmp/xmrig && /tmp/xmrig", False),
    ("find-private-keys", "Search Private Keys or Passwords", "find /tmp -name id_rsa", False),
    ("shred", "Remove Bulk Data from Disk", "echo x > /tmp/kg-data && shred /tmp/kg-data", False),
    ("scp", "Launch Remote File Copy Tools in Container", "scp 2>/dev/null || true", False),
    ("exec-dev-shm", "Execution from /dev/shm", "mkdir -p /dev/shm && cp /bin/true /dev/shm/kg-run && /dev/shm/kg-run",
     False),
    ("network-tool", "Launch Suspicious Network Tool in Container", "tcpdump --version > /dev/null", False),
    ("netcat-exec", "Netcat Remote Code Execution in Container", "nc -e /bin/true 127.0.0.1 9 || true", False),
    ("find-aws-credentials", "Find AWS Credentials", "find /tmp -path /root/.aws/credentials", False),
    ("package-manager", "Launch Package Management Process in Container", "dpkg --version > /dev/null", False),
    ("kubectl", "Kubernetes Client Tool Launched in Container", "cp /bin/true /tmp/kubectl && /tmp/kubectl", False),
    ("setuid-bit", "Set Setuid or Setgid bit", "touch /tmp/kg-suid && chmod u+s /tmp/kg-suid", False),
    ("unshare-unprivileged", "Change namespace privileges via unshare",
     "setpriv --reuid 65534 --regid 65534 --clear-groups unshare --user true", False),
]
# Rules of the group that a case's behaviour also meets, in Falco too (nc is also a network tool)
ALSO = {"Netcat Remote Code Execution in Container": ("Launch Suspicious Network Tool in Container",)}
GROUP = tuple(c[1] for c in CASES)
# The same behaviours in a pod that is not privileged: the privileged-only rules stay silent.
UNPRIVILEGED = ["mount -t tmpfs kg-tmp /mnt", "debugfs -R stats /dev/null || true"]
ENABLE: tuple[str, ...] = ()  # rules Falco ships disabled that a case needs


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    falco = FalcoLab.start(tmp_path_factory.mktemp("falco-process"),
                           options=tuple(f"rules[].enable.rule={name}" for name in ENABLE))
    try:
        yield falco
    finally:
        falco.close()


@pytest.mark.parametrize(("rule", "behaviour", "privileged"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_process_rule_fires(lab: FalcoLab, rule: str, behaviour: str, privileged: bool) -> None:
    pod = lab.pod("proc", privileged=privileged)
    pod.add_address(SSH_PEER)
    lab.behave(pod, behaviour)
    lab.expect_only(pod, rule, tuple(r for r in GROUP if r not in ALSO.get(rule, ())))


def test_privileged_rules_silent_in_unprivileged_pod(lab: FalcoLab) -> None:
    pod = lab.pod("unpriv")
    for behaviour in UNPRIVILEGED:
        lab.behave(pod, behaviour)
    lab.behave(pod, SENTINEL[0])
    assert lab.agent.wait_alert(SENTINEL[1], pod.container_id, timeout=30) is not None
    fired = {a["rule"] for a in lab.agent.alerts_for(pod.container_id)}
    assert not fired & {"Mount Launched in Privileged Container", "Debugfs Launched in Privileged Container"}
