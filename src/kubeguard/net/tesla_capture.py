"""The bundled Tesla-miner capture: how it is made (scripts/make_tesla_pcap.py calls `write_capture`).

A pod of the exposed dashboard resolves a mining pool's name, which a CDN-style CNAME chain
fronts, then speaks Stratum (XMRig's login / job / submit) to the CDN address on port 8443,
between ordinary cluster traffic. Deterministic: the same bytes every time.
"""

from __future__ import annotations

from pathlib import Path

from kubeguard.net.pcapgen import (
    PcapWriter,
    dns_query,
    dns_response,
    tcp_conversation,
    udp_exchange,
)

MINER_POD_IP = "10.244.3.17"
POOL_NAME = "gulf.moneroocean.stream"
CDN_CHAIN = ("gulf.moneroocean.stream.cdn.cloudflare.net",)
CDN_IP = "104.21.48.7"
STRATUM_PORT = 8443
START = 1_520_000_000.0  # February 2018

LOGIN = (b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33'
         b'DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A","pass":"x","agent":"XMRig/2.5.0 '
         b'(Linux x86_64) libuv/1.8.0 gcc/5.4.0","algo":["cn/1"]}}\n')
JOB = (b'{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"5a7c1e","job":{"blob":"0707f7a4c5d60500000000","job_id'
       b'":"1","target":"b88d0600"},"status":"OK"}}\n')
SUBMIT = b'{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"5a7c1e","job_id":"1","nonce":"2c010000"}}\n'


def write_capture(path: Path) -> None:
    """Write the demo capture to `path`."""
    with path.open("wb") as fh:
        w = PcapWriter(fh)
        ts = tcp_conversation(w, ("10.244.1.4", 51514), ("10.244.3.17", 9090),
                              [(0, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: kubernetes-dashboard\r\n"
                                   b"User-Agent: Mozilla/5.0\r\n\r\n"),
                               (1, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
                                   b"{}")], ts=START)
        ts = udp_exchange(w, (MINER_POD_IP, 38211), ("10.96.0.10", 53),
                          [(0, dns_query(POOL_NAME, ident=0x5A5A)),
                           (1, dns_response(POOL_NAME, ident=0x5A5A, cnames=CDN_CHAIN, address=CDN_IP))], ts=ts)
        tcp_conversation(w, (MINER_POD_IP, 44120), (CDN_IP, STRATUM_PORT), [(0, LOGIN), (1, JOB), (0, SUBMIT)],
                         ts=ts + 0.05, segment=64)
