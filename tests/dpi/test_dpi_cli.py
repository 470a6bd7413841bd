"""`kubeguard dpi` end to end on pcap files: alerts, flow records, the store, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeguard.net.pcapgen import PcapWriter, tcp_conversation, udp_exchange
from kubeguard.store.alerts import AlertStore

MINER = ("10.244.1.9", 43512)
POOL = ("203.0.113.50", 8443)
SUBSCRIBE = b'{"id":1,"method":"mining.subscribe","params":["cpuminer-multi/1.3.7"]}\n'


def run(*args: str, env_db: Path) -> subprocess.CompletedProcess[str]:
    env = {"KUBEGUARD_DB": str(env_db), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run([sys.executable, "-m", "kubeguard", "dpi", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def write_capture(path: Path) -> None:
    with path.open("wb") as fh:
        w = PcapWriter(fh)
        ts = tcp_conversation(w, ("10.244.1.5", 40100), ("10.244.2.7", 8080),
                              [(0, b"GET /api/items HTTP/1.1\r\nHost: shop\r\n\r\n"),
                               (1, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")])
        ts = tcp_conversation(w, MINER, POOL, [(0, SUBSCRIBE)], ts=ts)
        udp_exchange(w, ("10.244.1.9", 5353), ("10.96.0.10", 53),
                     [(0, bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"))],
                     ts=ts)


def pods_file(path: Path) -> Path:
    pod = {"kind": "Pod", "metadata": {"name": "worker-7f9c", "namespace": "batch", "uid": "u-1"},
           "spec": {"serviceAccountName": "worker", "nodeName": "node-a", "containers": [{"name": "w", "image": "x"}]},
           "status": {"podIP": MINER[0]}}
    path.write_text(json.dumps({"kind": "List", "items": [pod]}))
    return path


def test_dpi_file_json_alerts_flows_and_store(tmp_path: Path) -> None:
    cap = tmp_path / "pods.pcap"
    write_capture(cap)
    flows = tmp_path / "flows.jsonl"
    db = tmp_path / "alerts.db"
    result = run(str(cap), "-o", "json", "--flows-out", str(flows), "--pods", str(pods_file(tmp_path / "p.json")),
                 env_db=db)
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    mining = [a for a in alerts if a["rule"] == "Stratum mining protocol"]
    assert len(mining) == 1
    fields = mining[0]["output_fields"]
    assert (fields["fd.cip"], fields["fd.sport"], fields["k8s.pod.name"], fields["k8s.ns.name"]) == (
        MINER[0], POOL[1], "worker-7f9c", "batch")
    assert mining[0]["source"] == "network" and "T1496" in mining[0]["tags"]
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    by_proto = {r["net.proto"]: r for r in records}
    assert set(by_proto) == {"http", "stratum", "dns"}
    assert by_proto["http"]["http.status"] == 404 and by_proto["http"]["http.uri"] == "/api/items"
    assert by_proto["dns"]["dns.qname"] == "www.example.com"
    for r in records:
        assert {"fd.cip", "fd.cport", "fd.sip", "fd.sport", "fd.l4proto", "net.proto", "flow.pkts_toserver",
                "flow.pkts_toclient", "flow.bytes_toserver", "flow.bytes_toclient", "flow.start", "flow.end"} <= set(r)
    with AlertStore(db) as store:
        stored = list(store.alerts())
    assert [a.rule for a in stored] == ["Stratum mining protocol"]
    assert stored[0].workload is not None and stored[0].workload.pod == "worker-7f9c"


def test_dpi_rich_output(tmp_path: Path) -> None:
    cap = tmp_path / "pods.pcap"
    write_capture(cap)
    result = run(str(cap), "--no-store", env_db=tmp_path / "a.db")
    assert result.returncode == 0
    assert "Stratum mining protocol" in result.stdout
    assert "3 flows" in result.stdout


def test_damaged_and_missing_files_give_one_line(tmp_path: Path) -> None:
    cap = tmp_path / "pods.pcap"
    write_capture(cap)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(cap.read_bytes()[:-30])
    result = run(str(cut), "-o", "json", "--no-store", env_db=tmp_path / "a.db")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cut.pcap: damaged capture at packet" in result.stderr
    assert any(json.loads(line)["rule"] == "Stratum mining protocol" for line in result.stdout.splitlines())

    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all")
    result = run(str(garbage), "--no-store", env_db=tmp_path / "a.db")
    assert result.returncode == 1 and "not a pcap or pcapng file" in result.stderr

    for args, message in (([str(tmp_path / "missing.pcap")], "no such capture file"),
                          ([], "give capture files or --interface"),
                          ([str(cap), "-o", "yaml"], "--output"),
                          (["--interface", "nosuchif0"], "no such network interface"),
                          ([str(cap), "--pods", str(garbage)], "not JSON")):
        result = run(*args, env_db=tmp_path / "a.db")
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
