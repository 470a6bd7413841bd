"""`kubeguard quarantine NS/POD [--freeze] | --release`: cut a pod off the network, reversibly."""

from __future__ import annotations

from pathlib import Path

import typer

from kubeguard.agent.commands import pod_source
from kubeguard.cliutil import UserError, die, stdout
from kubeguard.response.quarantine import QuarantineError, quarantine, release, target_of


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
        try:
            target = target_of(pod_source(pods, node).podmap, namespace, name)
        except LookupError as exc:
            raise UserError(str(exc)) from exc
        ip = target.ip
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
