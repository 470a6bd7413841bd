"""Sensor benchmark: what the ebpf sensor's datagram probes (sendto/sendmsg/recvfrom/recvmsg) cost a process.

Run as root: `PYTHONPATH=src:. python -m bench.sensor_datagrams [--calls 200000] [--rounds 3] [--baseline REV]`.

A C loop (bench/agent_spawner/udploop.c) makes N datagram calls on loopback and prints ns per call; it runs
with no sensor and with the ebpf sensor running (kubeguard.bt, every probe), interleaved per round, for the
kinds of call the in-kernel filter tells apart: send() on a connected socket (no address: one comparison),
sendto() to one destination (kept in the kernel's last-destination map: a lookup, nothing reported), sendto()
to two destinations in turn (the destination changes on every call: every call reported, the worst case) and
sendto()+recvfrom() to itself (one sender: both deduplicated). "reported" counts the events the sensor
delivered. With --baseline, the same loops also run under kubeguard.bt as of git revision REV (the peer: the
program before the datagram probes).
"""

from __future__ import annotations

import os

from bench.record import record
from bench.sensor_cost import arguments, compiled, measure, run_loop

MODES = (  # (label, udploop mode)
    ("send() on a connected socket", "connected"),
    ("sendto(), one destination", "same"),
    ("sendto(), destination changes every call", "alternate"),
    ("sendto() + recvfrom(), one peer", "echo"),
)
DATAGRAM_CALLS = frozenset({"sendto", "sendmsg", "recvfrom", "recvmsg"})


def main() -> None:
    args = arguments(__doc__ or "", "calls", "bench.sensor_datagrams")
    tool = compiled("udploop")
    cases = [(label, (lambda m=mode: run_loop(tool, m, args.calls))) for label, mode in MODES]
    figures = measure(cases, lambda event, _label: event.get("proc.name") == "udploop"
                      and event.get("evt.type") in DATAGRAM_CALLS, args.rounds, args.baseline)
    rows, lost, peer = figures.rows(args.calls * args.rounds, " loops"), figures.lost, args.baseline
    peer_head = f"kubeguard.bt at {args.baseline} (ns) | " if peer is not None else ""
    peer_rule = "---|" if peer is not None else ""
    load = os.getloadavg()[0]
    markdown = f"""## Sensors: cost of the datagram probes (bench/sensor_datagrams.py)

ns per loop iteration of datagram calls on loopback in a C loop ({args.calls:,} iterations, median of
{args.rounds} interleaved rounds), without a sensor and with the ebpf sensor (all of kubeguard.bt) running;
"reported" counts the sendto/sendmsg/recvfrom/recvmsg events the sensor delivered (lost events in kernel over
all rounds: {lost}).

| calls | no sensor (ns) | {peer_head}ebpf sensor (ns) | ratio to no sensor | reported |
|---|---|---|{peer_rule}---|---|
{chr(10).join(rows)}

Sends without an address pay one comparison; sends and receives to or from the socket's last peer a map
lookup (nothing reported: Falco's fd.name_changed=false); a peer that changes on every call is reported every
time (the worst case, a server answering many clients). Figures taken under `nice -n 19` on a shared machine
(load average {load:.1f} at the end): the ratios within one run are what this benchmark is for.
"""
    print(markdown)
    record("sensor_datagrams", markdown)


if __name__ == "__main__":
    main()
