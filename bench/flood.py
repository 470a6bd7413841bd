"""Flood: the agent pipeline and the DPI engine offered 10x their rated rate for 60 s each.

`nice -n 19 python -m bench.flood [--seconds 60]`. Checks two things, not speed: memory stays bounded (RSS of
this process sampled every second; the bound is the queues' and the flow table's size, stated in the table)
and what cannot be handled is dropped, counted and reported as alerts.

- agent: the real Pipeline (enrichment, the default rules compiled, a store) fed from a sensor thread at 10x
  the rated 5,000 events/s (bench.sensors' target: 0 lost at 5k exec/s), i.e. 50,000 events/s; the pipeline
  queue (65,536 events) overflows and the "Falco internal: syscall event drop" alert carries the counts.
- dpi: the Engine fed from a capture thread through a bounded ring of 65,536 frames (as the kernel's
  AF_PACKET receive queue), offered a SYN flood of distinct flows at 10x the rated 9,360 new flows/s
  (bench.dpi_throughput's short-flow figure), i.e. 93,600 packets/s, each a new flow: ring overflows are counted
  as kernel drops, the flow table (200,000 flows) evicts early, and both become "DPI internal: packets or
  flows dropped" alerts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.record import record
from bench.rules import generate
from kubeguard.agent.enrich import Enricher
from kubeguard.agent.outputs import Output
from kubeguard.agent.pipeline import DROP_RULE, Pipeline
from kubeguard.agent.podsource import PodSource
from kubeguard.agent.proctable import ProcessTable
from kubeguard.model import Alert, Event
from kubeguard.net.dpi_engine import Engine, EngineConfig
from kubeguard.net.drops import DPI_DROP_RULE
from kubeguard.net.pcapgen import ether, ip_packets, tcp_segment
from kubeguard.rules.rule_engine import build_engine, default_rule_files, read_rules

AGENT_RATED = 5_000
DPI_RATED_FLOWS = 9_360
RING = 65_536
SLICE = 0.01  # the producers offer their rate in 10 ms slices


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """RSS of this process once a second, in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(rss_mib())

    def summary(self) -> dict[str, float]:
        s = self.samples or [rss_mib()]
        tenth = s[min(len(s) - 1, 10)]
        return {"first": s[0], "at_10s": tenth, "peak": max(s), "last": s[-1]}


def paced(rate: int, seconds: float, offer: Callable[[int], None]) -> int:
    """Call offer(n) every SLICE so that `rate` items/s are offered for `seconds`; returns items offered."""
    start = time.monotonic()
    offered = 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate) - offered
        if due > 0:
            offer(due)
            offered += due
        time.sleep(SLICE)
    return offered


class Collect(Output):
    name = "collect"

    def __init__(self, rules: set[str]) -> None:
        super().__init__()
        self.rules = rules
        self.kept: list[Alert] = []

    def send(self, alerts: Sequence[Alert]) -> None:
        self.kept.extend(a for a in alerts if a.rule in self.rules)


def agent_lane(seconds: float) -> dict[str, Any]:
    rules, problems = build_engine(read_rules(default_rule_files()))
    assert rules is not None, problems
    events = [Event(e) for e in generate(50_000)]
    out = Collect({DROP_RULE})
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(Enricher(PodSource(), procs=ProcessTable(proc=Path("/nonexistent"))), rules, [out],
                        store_path=Path(tmp) / "alerts.db", drop_report_interval=10.0, hostname="flood")
        pipe.start()
        position = 0

        def offer(n: int) -> None:
            nonlocal position
            for _ in range(n):
                pipe.submit(Event(events[position % len(events)]))
                position += 1

        with Sampler() as rss:
            offered = paced(AGENT_RATED * 10, seconds, offer)
        pipe.stop()
    return {"offered": offered, "processed": pipe.processed, "dropped": pipe.total_dropped,
            "alerts": out.kept, "rss": rss.summary(),
            "alerted": sum(int(a.output_fields.get("n_drops_queue", 0)) for a in out.kept)}


def syn_template() -> bytes:
    return ether(ip_packets("10.1.0.1", "10.0.0.2", 6, tcp_segment(40000, 80, 1, 0, 0x02, b""))[0], True)


def dpi_lane(seconds: float) -> dict[str, Any]:
    template = syn_template()
    alerts: list[Alert] = []
    engine = Engine(EngineConfig(), on_alert=lambda a: alerts.append(a) if a.rule == DPI_DROP_RULE else None)
    ring: deque[tuple[float, int, bytes]] = deque()
    ring_drops = 0
    done = threading.Event()
    flow = 0

    def offer(n: int) -> None:
        nonlocal ring_drops, flow
        ts = time.time()
        for _ in range(n):
            if len(ring) >= RING:
                ring_drops += 1
                continue
            flow += 1
            src = (0x0A000000 | (flow >> 16) & 0xFFFFFF).to_bytes(4, "big")  # with the port: a new flow each
            ring.append((ts, 1, template[:26] + src + template[30:34] + (flow & 0xFFFF).to_bytes(2, "big")
                         + template[36:]))

    def consume() -> None:
        reported = 0
        while not done.is_set() or ring:
            batch = [ring.popleft() for _ in range(min(len(ring), 4096))]
            if ring_drops > reported:
                engine.drops.add_kernel_drops(ring_drops - reported)
                reported = ring_drops
            if batch:
                engine.feed_frames(batch)
            else:
                time.sleep(SLICE)
        if ring_drops > reported:
            engine.drops.add_kernel_drops(ring_drops - reported)

    consumer = threading.Thread(target=consume)
    consumer.start()
    with Sampler() as rss:
        offered = paced(DPI_RATED_FLOWS * 10, seconds, offer)
        done.set()
        consumer.join()
    engine.finish()
    return {"offered": offered, "inspected": engine.packets, "ring_drops": ring_drops,
            "evicted": engine.table.evicted_full, "alerts": alerts, "rss": rss.summary(),
            "alerted_ring": max((int(a.output_fields["capture.kernel_drops"]) for a in alerts), default=0),
            "alerted_evicted": max((int(a.output_fields["flows.evicted_full"]) for a in alerts), default=0)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.flood")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    agent = agent_lane(args.seconds)
    print(f"agent: {agent | {'alerts': len(agent['alerts'])}}", flush=True)
    dpi = dpi_lane(args.seconds)
    print(f"dpi: {dpi | {'alerts': len(dpi['alerts'])}}", flush=True)
    ok = (agent["dropped"] > 0 and agent["alerted"] == agent["dropped"]
          and dpi["alerted_ring"] == dpi["ring_drops"] and dpi["alerted_evicted"] == dpi["evicted"])

    def mem(r: dict[str, float]) -> str:
        return f"{r['first']:.0f} / {r['at_10s']:.0f} / {r['peak']:.0f} / {r['last']:.0f}"

    record("flood", f"""## Flood: 10x the rated rate for {args.seconds:.0f} s (bench/flood.py)

`nice -n 19 python -m bench.flood`: one process, RSS sampled every second (MiB: after 1 s / after 10 s / peak /
last). Memory is bounded by the queues, not by the flood: the agent's pipeline queue holds 65,536 events and
its alert queue 16,384 alerts; the DPI's ring 65,536 frames, its flow table 200,000 flows.

| lane | offered | handled | dropped, counted | reported in drop alerts | drop alerts | RSS MiB |
|---|---:|---:|---:|---:|---:|---|
| agent pipeline (default rules + store), 10 x 5,000 events/s | {agent['offered']:,} | {agent['processed']:,} \
| {agent['dropped']:,} (queue full) | {agent['alerted']:,} | {len(agent['alerts'])} | {mem(agent['rss'])} |
| DPI engine, SYN flood of new flows, 10 x 9,360 flows/s | {dpi['offered']:,} | {dpi['inspected']:,} \
| {dpi['ring_drops']:,} (ring full) + {dpi['evicted']:,} flows evicted early | {dpi['alerted_ring']:,} + \
{dpi['alerted_evicted']:,} | {len(dpi['alerts'])} | {mem(dpi['rss'])} |

Every drop was reported in an alert: {'yes' if ok else 'NO'}. The rates are offered, not reached: what the
one Python thread of each lane cannot take is dropped at the queue, as the kernel ring or Falco's buffer would.
""")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
