"""The egress allow-list in the kernel for IPv6 and UDP, for real in a pod: connect6, UDP connect and
unconnected UDP sendto (sendmsg4/sendmsg6) to a destination outside the list fail with EPERM; the
allowed ones carry traffic; IPv4-mapped IPv6 destinations follow the IPv4 list; another pod is untouched."""

from __future__ import annotations

import json
import os
import sys

import pytest
from podlab import Pod, PodLab

from kubeguard.policy.connectguard import Allow, ConnectGuard

pytestmark = pytest.mark.root
PYTHON = os.path.realpath(sys.executable)
ALLOWED_V6, DENIED_V6 = "fd6b:6701::1", "fd6b:6701::2"
ALLOWED_V4, DENIED_V4 = "169.254.77.1", "169.254.77.2"
# In the pod: listeners on every address, then each check; prints one JSON object {check: "ok" | errno}.
PROBE = """
import json, socket, sys
addrs = sys.argv[1].split(",")
tcp, udp = {}, {}
for a in addrs:
    fam = socket.AF_INET6 if ":" in a else socket.AF_INET
    t = socket.socket(fam, socket.SOCK_STREAM); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((a, 7000)); t.listen(16); tcp[a] = t
    u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((a, 7001)); u.settimeout(10); udp[a] = u
def received(a, payload):
    return udp[a].recvfrom(64)[0] == payload
out = {}
for a in addrs:
    v6 = ":" in a
    for kind, fam, dest in (("", socket.AF_INET6 if v6 else socket.AF_INET, a),
                            ("mapped ", socket.AF_INET6, "::ffff:" + a)):
        if kind and v6:
            continue
        for check in ("tcp connect", "udp connect", "udp sendto"):
            name = f"{kind}{check} {a}"
            s = socket.socket(fam, socket.SOCK_STREAM if check == "tcp connect" else socket.SOCK_DGRAM)
            s.settimeout(10)
            payload = name.encode()[:64]
            try:
                if check == "tcp connect":
                    s.connect((dest, 7000)); tcp[a].accept()[0].close()
                elif check == "udp connect":
                    s.connect((dest, 7001)); s.send(payload); assert received(a, payload)
                else:
                    s.sendto(payload, (dest, 7001)); assert received(a, payload)
                out[name] = "ok"
            except OSError as exc:
                out[name] = exc.errno
            finally:
                s.close()
print(json.dumps(out))
"""


def probe(pod: Pod) -> dict[str, object]:
    got = pod.run([PYTHON, "-c", PROBE, ",".join((ALLOWED_V6, DENIED_V6, ALLOWED_V4, DENIED_V4))], timeout=120)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_ipv6_and_udp_destinations_outside_the_list_get_eperm(podlab: PodLab) -> None:
    guarded, other = podlab.pod("guarded"), podlab.pod("other")
    for pod in (guarded, other):
        for address in (ALLOWED_V6, DENIED_V6, ALLOWED_V4, DENIED_V4):
            pod.add_address(address)
    before = probe(guarded)
    assert set(before.values()) == {"ok"}, before  # everything works without the guard
    guard = ConnectGuard()
    try:
        guard.set_entries({Allow(f"{ALLOWED_V6}/128", 7000, "TCP"), Allow(f"{ALLOWED_V6}/128", 7001, "UDP"),
                           Allow(f"{ALLOWED_V4}/32", 7000, "TCP"), Allow(f"{ALLOWED_V4}/32", 0, "UDP")})
        guard.attach(str(guarded.cgroup_v2))
        after = probe(guarded)
        expected = {name: ("ok" if ALLOWED_V6 in name or name.endswith(" " + ALLOWED_V4) else 1) for name in before}
        assert after == expected, after
        assert set(probe(other).values()) == {"ok"}  # the other pod is untouched
        # the list changes in place: the denied IPv6 address becomes allowed for UDP only
        guard.set_entries({*guard.entries, Allow(f"{DENIED_V6}/128", 0, "UDP")})
        now = probe(guarded)
        assert now[f"udp sendto {DENIED_V6}"] == now[f"udp connect {DENIED_V6}"] == "ok", now
        assert now[f"tcp connect {DENIED_V6}"] == 1, now
    finally:
        guard.close()
    assert set(probe(guarded).values()) == {"ok"}  # detached with close()
