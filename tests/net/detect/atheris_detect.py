"""Coverage-guided fuzzing of the L7 detectors with atheris (libFuzzer).

Run by test_detect_atheris.py for a bounded number of inputs; by hand for longer:
`PYTHONPATH=src python tests/net/detect/atheris_detect.py -max_total_time=600`.
No exception may escape a detector: anything raised is a crash libFuzzer reports.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from kubeguard.net.detect.decode import b64_decode, normalize
    from kubeguard.net.detect.dns import DnsTunnelDetector, tunnel_score
    from kubeguard.net.detect.http import inspect_http_request
    from kubeguard.net.detect.jndi import jndi_lookup
    from kubeguard.net.detect.sql import inspect_sql_query
    from kubeguard.net.detect.sqli import sqli_score
    from kubeguard.net.detect.ssrf import metadata_target
    from kubeguard.net.detect.volume import ScanFloodDetector
    from kubeguard.net.types import DnsQuestion, HttpRequest

CTYPES = ["application/json", "text/xml", "multipart/form-data; boundary=b", "application/x-www-form-urlencoded",
          "text/plain", ""]
DNS = DnsTunnelDetector()
VOLUME = ScanFloodDetector()


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 3)
    if target == 0:
        text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
        normalize(text, plus=True)
        b64_decode(text)
        sqli_score(text)
        jndi_lookup(text)
        metadata_target(text)
        inspect_sql_query(text)
        tunnel_score(text)
    elif target == 1:
        method = fdp.ConsumeUnicodeNoSurrogates(8)
        uri = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
        headers = [(fdp.PickValueInList(["Cookie", "User-Agent", "Host", "Authorization", "Referer", "X-A"]),
                    fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200)))
                   for _ in range(fdp.ConsumeIntInRange(0, 4))]
        headers.append(("Content-Type", fdp.PickValueInList(CTYPES)))
        cl = [fdp.ConsumeUnicodeNoSurrogates(12) for _ in range(fdp.ConsumeIntInRange(0, 2))]
        te = [fdp.ConsumeUnicodeNoSurrogates(12) for _ in range(fdp.ConsumeIntInRange(0, 2))]
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
        inspect_http_request(HttpRequest(method, uri, headers=headers, body=body, content_length=cl,
                                         transfer_encoding=te))
    elif target == 2:
        qtype = fdp.PickValueInList(["A", "TXT", "NULL", "AXFR", "10", ""])
        DNS.observe("10.0.0.1", DnsQuestion(fdp.ConsumeUnicodeNoSurrogates(300), qtype), fdp.ConsumeFloat())
    else:
        VOLUME.observe_packet(fdp.ConsumeFloat(), fdp.ConsumeUnicodeNoSurrogates(16),
                              fdp.ConsumeUnicodeNoSurrogates(16), fdp.PickValueInList(["tcp", "udp", "icmp", 6, 99]),
                              fdp.ConsumeIntInRange(0, 65535), fdp.ConsumeIntInRange(0, 255),
                              fdp.ConsumeIntInRange(0, 255) if fdp.ConsumeBool() else None)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
