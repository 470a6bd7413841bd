"""A test agent process: raises `count` alerts at `rate`/s through the agent's console output (spool + HTTPS).

Usage: python agent_proc.py URL TOKEN_FILE CA NODE COUNT RATE SPOOL IDS_OUT
Writes every produced alert id to IDS_OUT (one per line, flushed before the alert is handed over), then
closes the output (drains the spool) and prints a JSON summary line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from kubeguard.agent.shipper import ConsoleOutput, read_token, tls_context
from kubeguard.agent.spool import Spool
from kubeguard.model import Alert


def main() -> None:
    url, token_file, ca, node, count, rate, spool, ids_out = sys.argv[1:9]
    output = ConsoleOutput(url, read_token(Path(token_file)), Spool(Path(spool)), tls_context(Path(ca)),
                           health=lambda: {"events_per_s": 100.0}, heartbeat=1.0, poll=1.0, timeout=5.0)
    start = time.monotonic()
    with open(ids_out, "w") as ids:
        for i in range(int(count)):
            alert = Alert(rule="Terminal shell in container", priority="Notice", output=f"shell {i} on {node}",
                          hostname=node, output_fields={"k8s.ns.name": "shop", "k8s.pod.name": f"web-{node}-{i % 7}",
                                                        "k8s.node.name": node, "proc.name": "bash", "seq": i})
            ids.write(alert.uuid + "\n")
            ids.flush()
            output.send([alert])
            delay = start + (i + 1) / float(rate) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    output.close(drain=120.0)
    print(json.dumps({"node": node, "sent": output.sent, "delivered": output.delivered,
                      "failed_posts": output.failed_posts,
                      "batches": output.batches}), flush=True)


if __name__ == "__main__":
    main()
