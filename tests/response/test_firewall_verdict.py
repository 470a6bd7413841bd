"""Firewall verdicts on synthetic packets (no kernel): what blocks, what bypasses, fail modes, injection."""

from __future__ import annotations

import socket

import pytest

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert
from kubeguard.response.allowlist import parse
from kubeguard.response.firewall import Firewall, Verdict
from kubeguard.response.inject import ACK, FIN, PSH, RST, SYN, TcpHead, segment

CLIENT, SERVER = "10.1.0.5", "10.1.0.9"


def pod(name: str, ip: str, labels: dict[str, str]) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": name, "labels": labels},
            "spec": {}, "status": {"podIP": ip}}


PODS = PodMap.from_pods([pod("client", CLIENT, {"app": "client"}), pod("web", SERVER, {"app": "web"})])


class FakeInjector:
    def __init__(self) -> None:
        self.calls: list[tuple[str, TcpHead]] = []

    def reset_receiver(self, p: TcpHead) -> None:
        self.calls.append(("rst-receiver", p))

    def reset_sender(self, p: TcpHead) -> None:
        self.calls.append(("rst-sender", p))

    def forbid_sender(self, p: TcpHead) -> None:
        self.calls.append(("403", p))


class Conn:
    """A TCP connection's packets, with sequence numbers kept right."""

    def __init__(self, fw: Firewall, sport: int = 40000, dport: int = 8080) -> None:
        self.fw, self.sport, self.dport = fw, sport, dport
        self.cseq, self.sseq = 1000, 5000
        self.c, self.s = socket.inet_aton(CLIENT), socket.inet_aton(SERVER)

    def handshake(self) -> list[Verdict]:
        out = [self.fw.verdict(segment(self.c, self.s, self.sport, self.dport, self.cseq, 0, SYN))]
        out.append(self.fw.verdict(segment(self.s, self.c, self.dport, self.sport, self.sseq, self.cseq + 1,
                                           SYN | ACK)))
        self.cseq += 1
        self.sseq += 1
        out.append(self.fw.verdict(segment(self.c, self.s, self.sport, self.dport, self.cseq, self.sseq, ACK)))
        return out

    def client(self, data: bytes) -> Verdict:
        v = self.fw.verdict(segment(self.c, self.s, self.sport, self.dport, self.cseq, self.sseq, ACK | PSH, data))
        self.cseq += len(data)
        return v

    def server(self, data: bytes) -> Verdict:
        v = self.fw.verdict(segment(self.s, self.c, self.dport, self.sport, self.sseq, self.cseq, ACK | PSH, data))
        self.sseq += len(data)
        return v


def make(mode: str = "protect", allow: str = "", fail_closed: bool = False) -> tuple[Firewall, list[Alert],
                                                                                       FakeInjector]:
    alerts: list[Alert] = []
    inj = FakeInjector()
    fw = Firewall(PODS, parse(allow) if allow else None, default_mode=mode, on_alert=alerts.append,
                  injector=inj, fail_closed=fail_closed)  # type: ignore[arg-type]
    fw.select({CLIENT, SERVER})
    return fw, alerts, inj


SQLI = b"GET /item?id=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1\r\nHost: web\r\n\r\n"
BENIGN = b"GET /item?id=42&q=please+select+your+size HTTP/1.1\r\nHost: web\r\n\r\n"


def test_sqli_request_blocked_with_403_to_client_and_rst_to_server() -> None:
    fw, alerts, inj = make()
    conn = Conn(fw)
    assert conn.handshake() == [Verdict.PASS] * 3
    assert conn.client(BENIGN) == Verdict.PASS
    assert conn.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == Verdict.PASS
    seq = conn.cseq
    assert conn.client(SQLI) == Verdict.BLOCK_QUIET
    assert [c for c, _ in inj.calls] == ["rst-receiver", "403"]
    head = inj.calls[1][1]
    assert (head.seq, head.ack, head.payload_len) == (seq, conn.sseq, len(SQLI))
    assert alerts[-1].rule == "HTTP SQL injection" and alerts[-1].output_fields["firewall.action"] == "blocked"
    assert conn.client(b"GET / HTTP/1.1\r\n\r\n") == Verdict.BLOCK  # anything still queued on that flow
    assert fw.counters.http_403 == 1 and fw.counters.blocked_flows == 1


def test_monitor_mode_alerts_only() -> None:
    fw, alerts, inj = make(mode="monitor")
    conn = Conn(fw)
    conn.handshake()
    assert conn.client(SQLI) == Verdict.PASS
    assert not inj.calls
    assert alerts[-1].output_fields["firewall.action"] == "alert"
    assert alerts[-1].output_fields["firewall.mode"] == "monitor"


def test_pods_not_selected_are_not_enforced() -> None:
    fw, alerts, _ = make()
    fw.select(set())
    conn = Conn(fw)
    conn.handshake()
    assert conn.client(SQLI) == Verdict.PASS
    assert alerts and alerts[-1].output_fields["firewall.mode"] == "off"


def test_identified_flow_with_nothing_more_to_inspect_is_bypassed() -> None:
    fw, _, _ = make()
    conn = Conn(fw, dport=6379)
    conn.handshake()
    assert conn.client(b"*1\r\n$4\r\nPING\r\n") == Verdict.BYPASS
    assert fw.counters.bypassed_flows == 1


ALLOW = """
policies:
  - name: client-https
    namespace: shop
    endpointSelector: {matchLabels: {app: client}}
    egress:
      - toPorts: [{ports: [{port: "8443"}], protocols: [tls]}]
"""


def test_allow_list_blocks_other_protocol_on_allowed_port_and_other_ports_at_syn() -> None:
    fw, alerts, inj = make(mode="monitor", allow=ALLOW)  # the policy's own mode (protect) applies
    conn = Conn(fw, dport=8443)
    conn.handshake()
    assert conn.client(b'{"id":1,"method":"mining.subscribe","params":["xmrig/6.21.0"]}\n') == Verdict.BLOCK
    assert [c for c, _ in inj.calls] == ["rst-receiver"]
    rules = {a.rule for a in alerts}
    assert {"Firewall policy violation", "Stratum mining protocol"} <= rules
    other = Conn(fw, sport=40001, dport=22)
    assert other.fw.verdict(segment(other.c, other.s, other.sport, 22, 1, 0, SYN)) == Verdict.BLOCK
    assert "egress to shop/web:22/tcp not allowed" in alerts[-1].output


def test_server_first_ssh_banner_blocked_on_tls_only_port() -> None:
    fw, alerts, _ = make(allow=ALLOW)
    conn = Conn(fw, dport=8443)
    conn.handshake()
    assert conn.server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n") == Verdict.BLOCK
    assert "protocol ssh not allowed" in alerts[-1].output


@pytest.mark.parametrize("fail_closed", [False, True])
def test_unparsable_packet_counted_and_handled_by_fail_mode(fail_closed: bool) -> None:
    fw, _, _ = make(fail_closed=fail_closed)
    for junk in (b"", b"\x45", b"\x60" + b"\x00" * 10, b"\x4f" + b"\xff" * 30):
        assert fw.verdict(junk) == (Verdict.DROP if fail_closed else Verdict.PASS)
    assert fw.counters.unparsed == 4
    assert (fw.counters.fail_dropped, fw.counters.fail_passed) == ((4, 0) if fail_closed else (0, 4))


def test_engine_failure_is_handled_by_fail_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    fw, _, _ = make()

    def broken(_pkt: object) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(fw.engine, "packet", broken)
    conn = Conn(fw)
    assert conn.handshake() == [Verdict.PASS] * 3
    assert fw.counters.errors == 3 and fw.counters.fail_passed == 3


def test_segment_builds_valid_checksums() -> None:
    pkt = segment(socket.inet_aton(CLIENT), socket.inet_aton(SERVER), 1, 2, 3, 4, FIN | ACK, b"abc")
    head = TcpHead.parse(pkt)
    assert head is not None and (head.sport, head.dport, head.seq, head.ack, head.payload_len) == (1, 2, 3, 4, 3)

    def fold(data: bytes) -> int:
        total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return total

    assert fold(pkt[:20]) == 0xFFFF
    tcp = pkt[20:] + b"\x00"
    pseudo = pkt[12:20] + bytes([0, 6]) + len(pkt[20:]).to_bytes(2, "big")
    assert fold(pseudo + tcp) == 0xFFFF
    assert RST == 4


def test_workload_policy_mode_wins(tmp_path) -> None:
    from kubeguard.response.commands import _policy_store
    from kubeguard.response.modes import policy_modes

    owned = pod("web-5d9f4-x7k2p", SERVER, {"app": "web", "pod-template-hash": "5d9f4"})
    owned["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-5d9f4", "controller": True}]  # type: ignore[index]
    pods = PodMap.from_pods([pod("client", CLIENT, {"app": "client"}), owned])
    (tmp_path / "web.yaml").write_text(
        "apiVersion: kubeguard.io/v1alpha1\nkind: WorkloadPolicy\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  workload: {kind: Deployment, name: web}\n  mode: protect\n")
    store = _policy_store(tmp_path)
    alerts: list[Alert] = []
    fw = Firewall(pods, default_mode="monitor", on_alert=alerts.append, injector=FakeInjector(),  # type: ignore[arg-type]
                  mode_of=policy_modes(store, lambda: pods))
    fw.select({CLIENT, SERVER})
    conn = Conn(fw)
    conn.handshake()
    assert conn.client(SQLI) == Verdict.BLOCK_QUIET
    assert alerts[-1].output_fields["firewall.mode"] == "protect"
    (tmp_path / "web.yaml").write_text((tmp_path / "web.yaml").read_text().replace("protect", "monitor") + "\n")
    store.reload()
    conn = Conn(fw, sport=40002)
    conn.handshake()
    assert conn.client(SQLI) == Verdict.PASS
    assert alerts[-1].output_fields["firewall.mode"] == "monitor"
