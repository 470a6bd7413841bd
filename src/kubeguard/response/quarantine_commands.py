"""`kubeguard quarantine NS/POD [--freeze] | --release`: cut a pod off the network, reversibly."""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.agent.commands import pod_source
from kubeguard.cliutil import UserError, die, stdout
from kubeguard.cluster.cgroups import find_cgroup2_root
from kubeguard.response.quarantine import QuarantineError, Target, interface_of, pod_cgroup, quarantine, release


def quarantine_command(
    pod: str = typer.Argument(..., help="NAMESPACE/POD"),
    freeze: bool = typer.Option(False, "--freeze", help="Also freeze every process of the pod (cgroup.freeze)."),
    undo: bool = typer.Option(False, "--release", help="Undo: reconnect (and thaw) the pod."),
    pods: Path | None = typer.Option(None, "--pods", help="Pods map file (default: kubelet / API server)."),
    node: str = typer.Option("", "--node", envvar="NODE_NAME", help="This node's name (API server lookups)."),
) -> None:
    """Cut a pod off the network with nftables (both directions, every peer) and optionally freeze it."""
    try:
        namespace, _, name = pod.partition("/")
        if not namespace or not name:
            raise UserError(f"{pod!r}: expected NAMESPACE/POD")
        podmap = pod_source(pods, node).podmap
        found = next((w for w in podmap.by_pod_uid.values() if w.namespace == namespace and w.pod == name), None)
        if found is None:
            raise UserError(f"{pod}: no such pod in the pods map")
        ip = next((addr for addr, w in podmap.by_ip.items() if w.pod_uid == found.pod_uid and ":" not in addr), "")
        if not ip:
            raise UserError(f"{pod}: the pod has no IPv4 address (host network pods cannot be quarantined)")
        target = Target(ip, interface_of(ip), pod_cgroup(found.pod_uid, find_cgroup2_root()))
        if undo:
            release(target)
            stdout.print(f"{pod}: released ({ip})", markup=False)
        else:
            quarantine(target, freeze)
            stdout.print(f"{pod}: quarantined ({ip}{', ' + target.interface if target.interface else ''}"
                         f"{', frozen' if freeze else ''})", markup=False)
    except UserError as exc:
        die(str(exc), exc.code)
    except QuarantineError as exc:
        die(str(exc), 1)
