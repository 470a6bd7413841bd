"""`kubeguard capture --pod NS/NAME -w FILE.pcapng`: capture one pod's traffic on its host-side interface."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from kubeguard.agent.commands import pod_source
from kubeguard.cliutil import UserError, die, stderr
from kubeguard.cluster.cgroups import find_cgroup2_root
from kubeguard.net.capture import CaptureError, compile_bpf, live
from kubeguard.net.decode import LINK_ETHERNET
from kubeguard.net.pcapng_writer import PcapngWriteError, RingWriter, header_blocks
from kubeguard.net.podcapture import PodInterfaceError, pod_interface

SNAPLEN = 262_144


def capture_command(
    pod: str = typer.Option(..., "--pod", help="NAMESPACE/POD to capture."),
    write: Path = typer.Option(..., "-w", "--write", help="pcapng file to write (the ring's base name with --ring)."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds."),
    count: int = typer.Option(None, "--count", help="Stop after this many packets."),
    bpf: str = typer.Option(None, "--filter", help="Capture filter (tcpdump/pcap syntax), e.g. 'tcp port 80'."),
    ring: int = typer.Option(None, "--ring", help="Ring buffer: keep at most this many files (needs --max-size)."),
    max_size: float = typer.Option(None, "--max-size", help="Ring buffer: start a new file past this many MB."),
    pods: Path = typer.Option(None, "--pods", help="Pods map file (default: kubelet / API server)."),
    node: str = typer.Option("", "--node", envvar="NODE_NAME", help="This node's name (API server lookups)."),
) -> None:
    """Capture a pod's packets (both directions) into pcapng, with pod, namespace and node as comments."""
    try:
        if (ring is None) != (max_size is None):
            raise UserError("--ring N and --max-size MB go together")
        if ring is not None and (ring < 1 or max_size <= 0):
            raise UserError("--ring must be >= 1 and --max-size > 0")
        namespace, _, name = pod.partition("/")
        if not namespace or not name:
            raise UserError(f"--pod {pod!r}: expected NAMESPACE/POD")
        podmap = pod_source(pods, node).podmap
        found = next((w for w in podmap.by_pod_uid.values() if w.namespace == namespace and w.pod == name), None)
        if found is None:
            raise UserError(f"--pod {pod}: no such pod in the pods map")
        ip = next((addr for addr, w in podmap.by_ip.items() if w.pod_uid == found.pod_uid), "")
        interface, how = pod_interface(ip, found.pod_uid, find_cgroup2_root())
        program = compile_bpf(interface, bpf) if bpf else None
        comments = [f"pod={found.namespace}/{found.pod}", f"namespace={found.namespace}",
                    f"node={found.node or 'unknown'}", f"pod_uid={found.pod_uid}", f"pod_ip={ip or 'none'}"]
        if bpf:
            comments.append(f"filter={bpf}")
        header = header_blocks(comments, interface, f"pod {found.namespace}/{found.pod} ({how})",
                               LINK_ETHERNET, SNAPLEN)
        writer = RingWriter(write, header, SNAPLEN, int(max_size * 1_000_000) if max_size else None, ring)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        ready = lambda: stderr.print(f"capture: {pod} on {interface} ({how})", markup=False)  # noqa: E731
        try:
            for ts, _link, frame in live(interface, duration=duration, count=count, stop=stop, on_ready=ready,
                                         bpf=program):
                writer.write(ts, frame)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            writer.close()
    except (UserError, PodInterfaceError, CaptureError, PcapngWriteError) as exc:
        die(str(exc), getattr(exc, "code", 1))
    files = ", ".join(str(p) for p in writer.written)
    stderr.print(f"capture: {writer.packets} packets written to {files}", markup=False)
