"""The firewall's own iptables chains: installed on start, removed on exit, never left behind.

Layout (filter table; pod-to-pod traffic is routed, or bridged with br_netfilter, through FORWARD),
shown for queue 7 (every chain name carries the queue number, so firewalls on different queues and
disjoint pods can run side by side):

    FORWARD      -j KG-FW7                         (inserted first)
    KG-FW7       mark has REPEAT bit   -j KG-FW7-VERDICT   a queued packet back from its verdict
                 mark has REPEAT bit   -j RETURN          (it passed: on with the rest of FORWARD)
                 connmark has BLOCK    -j KG-FW7-BLOCK     a blocked connection: nothing more passes
                 connmark has BYPASS   -j RETURN          a decided connection: leaves the queue
                 -j KG-FW7-PODS
    KG-FW7-PODS   -s POD_IP -j KG-FW7-QUEUE, -d POD_IP -j KG-FW7-QUEUE   (one pair per selected pod)
    KG-FW7-QUEUE  -j NFQUEUE --queue-num N [--queue-bypass]
    KG-FW7-VERDICT  mark BLOCK  -> connmark |= BLOCK; mark QUIET -> DROP; else -> KG-FW7-BLOCK
                   mark BYPASS -> connmark |= BYPASS
    KG-FW7-BLOCK  -p tcp -j REJECT --reject-with tcp-reset, else DROP

Every verdict is NF_REPEAT with mark bits set: the packet walks FORWARD again, our first rule
sends it to KG-FW7-VERDICT, which records the decision in the connection's mark and then either
RETURNs (the rest of FORWARD still applies: the firewall never accepts on behalf of other rules) or
drops it. Connections whose connmark carries BYPASS never reach the queue again, so established,
decided flows pay two rule lookups and nothing else.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from kubeguard.errors import KubeguardError

log = logging.getLogger(__name__)

CHAIN_PREFIX = "KG-FW"  # chains are named KG-FW<queue>, KG-FW<queue>-VERDICT, ... (one set per queue number)
SUBCHAINS = ("VERDICT", "BLOCK", "PODS", "QUEUE")
HOOK_CHAIN = "FORWARD"


class IptablesError(KubeguardError):
    """iptables is missing or refused a rule; the message names the command."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=1)  # the run cannot start (or stop cleanly)


@dataclass(frozen=True, slots=True)
class Marks:
    """Bits of the packet mark and connmark the firewall owns (kube-proxy uses 0x4000/0x8000)."""

    repeat: int = 0x00100000  # packet: came back from a queue verdict
    bypass: int = 0x00200000  # packet/conn: decided, no more inspection
    block: int = 0x00400000  # packet/conn: blocked
    quiet: int = 0x00800000  # packet: drop without a kernel RST (the firewall injected its own answer)

    @property
    def all(self) -> int:
        return self.repeat | self.bypass | self.block | self.quiet


def _mark(bit: int) -> str:
    return f"0x{bit:x}/0x{bit:x}"


class Chains:
    """Install, update and remove the firewall's chains with the `iptables` binary."""

    def __init__(self, queue_num: int, queue_bypass: bool = True, marks: Marks | None = None,
                 binary: str = "iptables", hook_chain: str = HOOK_CHAIN) -> None:
        path = shutil.which(binary)
        if path is None:
            raise IptablesError(f"{binary} not found (install Debian's iptables)")
        restore = shutil.which(f"{binary}-restore")
        if restore is None:
            raise IptablesError(f"{binary}-restore not found (install Debian's iptables)")
        self.binary = path
        self.restore = restore
        self.queue_num = queue_num
        self.queue_bypass = queue_bypass
        self.marks = marks or Marks()
        self.hook_chain = hook_chain
        self.installed = False
        self.pod_ips: tuple[str, ...] = ()

    # ---- plumbing ---------------------------------------------------------------------------

    def _ipt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "-w", "5", "-t", "filter", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise IptablesError(f"{' '.join(cmd[1:])}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
        return proc

    def _restore(self, lines: Iterable[str]) -> None:
        """Apply `lines` (iptables-restore syntax, filter table) in one transaction, keeping other rules."""
        text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        proc = subprocess.run([self.restore, "-w", "5", "--noflush"], input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            raise IptablesError(f"iptables-restore: {proc.stderr.strip() or f'exit {proc.returncode}'}")

    # ---- life cycle -------------------------------------------------------------------------

    @property
    def chain(self) -> str:
        return f"{CHAIN_PREFIX}{self.queue_num}"

    def sub(self, name: str) -> str:
        return f"{self.chain}-{name}"

    def chains(self) -> list[str]:
        return [self.chain, *(self.sub(n) for n in SUBCHAINS)]

    def install(self, pod_ips: Iterable[str]) -> None:
        """Create the chains (removing leftovers of an earlier run first) and hook them into FORWARD."""
        self.remove()
        m = self.marks
        top, verdict, block, pods, queue = self.chain, *(self.sub(n) for n in SUBCHAINS)
        bypass = " --queue-bypass" if self.queue_bypass else ""
        lines = [*(f":{c} - [0:0]" for c in self.chains()),
                 f"-A {top} -m mark --mark {_mark(m.repeat)} -j {verdict}",
                 f"-A {top} -m mark --mark {_mark(m.repeat)} -j RETURN",
                 f"-A {top} -m connmark --mark {_mark(m.block)} -j {block}",
                 f"-A {top} -m connmark --mark {_mark(m.bypass)} -j RETURN",
                 f"-A {top} -j {pods}",
                 f"-A {verdict} -m mark --mark {_mark(m.block)} -j CONNMARK --set-xmark {_mark(m.block)}",
                 f"-A {verdict} -m mark --mark {_mark(m.block | m.quiet)} -j DROP",
                 f"-A {verdict} -m mark --mark {_mark(m.block)} -j {block}",
                 f"-A {verdict} -m mark --mark {_mark(m.bypass)} -j CONNMARK --set-xmark {_mark(m.bypass)}",
                 f"-A {block} -p tcp -j REJECT --reject-with tcp-reset",
                 f"-A {block} -j DROP",
                 f"-A {queue} -j NFQUEUE --queue-num {self.queue_num}{bypass}",
                 *self._pod_rules(pod_ips),
                 f"-I {self.hook_chain} 1 -j {top}"]
        self._restore(lines)
        self.installed = True
        log.info("firewall chains installed (queue %d, %d pod addresses)", self.queue_num, len(self.pod_ips))

    def _pod_rules(self, pod_ips: Iterable[str]) -> list[str]:
        self.pod_ips = tuple(sorted(set(pod_ips)))
        pods, queue = self.sub("PODS"), self.sub("QUEUE")
        rules = []
        for ip in self.pod_ips:
            if ":" in ip:
                continue  # IPv6 pods: ip6tables is not driven yet (docs/firewall.md)
            rules += [f"-A {pods} -s {ip}/32 -j {queue}", f"-A {pods} -d {ip}/32 -j {queue}"]
        return rules

    def set_pods(self, pod_ips: Iterable[str]) -> None:
        """Replace the selected pod addresses in one transaction (pods came or went)."""
        ips = tuple(sorted(set(pod_ips)))
        if ips == self.pod_ips:
            return
        self._restore([f"-F {self.sub('PODS')}", *self._pod_rules(ips)])
        log.info("firewall now inline for %d pod addresses", len(self.pod_ips))

    def remove(self) -> None:
        """Unhook and delete every chain of ours (idempotent; also cleans up after a killed run)."""
        while self._ipt("-D", self.hook_chain, "-j", self.chain, check=False).returncode == 0:
            pass
        for chain in self.chains():
            self._ipt("-F", chain, check=False)
        for chain in self.chains():
            self._ipt("-X", chain, check=False)
        self.installed = False

    def leftovers(self) -> list[str]:
        """Rules of ours that exist now, as `iptables -S` lines (empty after `remove`)."""
        text = self._ipt("-S", check=False).stdout
        return [line for line in text.splitlines() if re.search(rf"\b{re.escape(self.chain)}\b", line)]

    def queued_packets(self) -> int:
        """Packets that hit the NFQUEUE rule so far (its counter), for counting bypassed packets."""
        text = self._ipt("-L", self.sub("QUEUE"), "-v", "-x", "-n", check=False).stdout
        for line in text.splitlines():
            if "NFQUEUE" in line:
                fields = line.split()
                if fields and fields[0].isdigit():
                    return int(fields[0])
        return 0
