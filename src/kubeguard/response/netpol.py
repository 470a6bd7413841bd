"""NetworkPolicy (L3/L4) for the inline firewall: the project's one evaluator (`kubeguard.net.netpol`) over
the firewall's pods plus NetworkPolicy / Namespace manifests.

`NetpolCheck.decide(...)` answers None for an allowed connection, else the deny as a `Decision` naming the
side that denied (egress: the client's pod, ingress: the server's) and the policies isolating it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubeguard.cluster.bounds import loads_json, read_bounded
from kubeguard.cluster.loader import load_paths
from kubeguard.cluster.snapshot import K8sObject, Snapshot
from kubeguard.errors import KubeguardError
from kubeguard.net.netpol import NetpolEvaluator
from kubeguard.response.allowlist import Decision

L4 = {"tcp": "TCP", "udp": "UDP"}


class NetpolLoadError(KubeguardError):
    """NetworkPolicy manifests or the pods file could not be read; the message names the file."""


class NetpolCheck:
    """NetworkPolicy decisions for the firewall's connections; `reload_pods` follows the pods file."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = list(paths)
        for path in self.paths:
            if not path.exists():
                raise NetpolLoadError(f"--netpol {path}: no such file or directory")
        self.manifests = load_paths(self.paths, Snapshot())
        self.problems = [str(p) for p in self.manifests.problems]
        self.evaluator = NetpolEvaluator(self.manifests)
        self.problems += [str(p) for p in self.evaluator.problems]
        if not self.evaluator.policies:
            self.problems.append(f"--netpol {', '.join(map(str, self.paths))}: no NetworkPolicy found")

    def reload_pods(self, pods_file: Path) -> None:
        """Rebuild the evaluator over the manifests plus the pods of `pods_file` (their IPs and labels)."""
        try:
            data, _ = loads_json(read_bounded(pods_file).decode("utf-8-sig"))
        except (OSError, ValueError) as exc:  # InputError and UnicodeDecodeError are ValueErrors
            raise NetpolLoadError(f"{pods_file}: cannot read pods for NetworkPolicy: {exc}") from exc
        snapshot = Snapshot()
        snapshot.extend(self.manifests.objects)
        if isinstance(data, dict) and data.get("kind") == "KubeguardSnapshot":
            snapshot.extend(o for o in Snapshot.from_dict(data).objects if o.kind == "Pod")
        elif isinstance(data, dict):
            listed = data.get("items")
            items: list[Any] = listed if isinstance(listed, list) else [data]
            snapshot.extend(K8sObject(item) for item in items if isinstance(item, dict) and item.get("kind", "Pod")
                            == "Pod")
        self.evaluator = NetpolEvaluator(snapshot)

    def decide(self, cip: str, sip: str, port: int, l4: str) -> Decision | None:
        """None when NetworkPolicy allows the connection (or does not apply to its protocol), else the deny."""
        protocol = L4.get(l4)
        if protocol is None:
            return None
        ev = self.evaluator
        verdict = ev.evaluate(ev.by_ip(cip), ev.by_ip(sip), port, protocol)
        if verdict.allowed:
            return None
        side = "egress" if not verdict.egress.allowed else "ingress"
        return Decision(False, f"NetworkPolicy denies {verdict.src} -> {verdict.dst}:{port}/{protocol} "
                               f"({verdict.reason})", side, ",".join(verdict.deciding))
